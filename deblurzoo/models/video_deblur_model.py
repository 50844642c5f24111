"""The video deblurring model: BasicSR's ``VideoRecurrentModel`` with deblurzoo's training step and inference.

Training takes clips ``lq`` (b, t, 3, h, w) and targets ``gt`` of the same shape (recurrent nets, e.g.
``SARNRecurrent``) or the centre frame (b, 3, h, w) (window nets such as ``SARNMulti``, trained on ``DVDDataset``
with ``center_frame_only: true``). Validation and testing are BasicSR's: whole sequences (``DVDTestDataset``), PSNR and
SSIM per frame, averaged per sequence and then over sequences; it runs on CPU and with gloo thanks to
``deblurzoo.compat``. Differences from ``VideoRecurrentModel`` (and only these):

- optimisers, schedulers (``PolyLR`` too), losses and the training step are :class:`DeblurTraining`'s (options never
  mutated; a perceptual loss sees the clip's frames as images); ``flow_lr_mul`` / ``fix_flow`` (BasicVSR's SpyNet
  settings) do not apply;
- test-time inference is the inference engine's, the CLI's (:class:`~deblurzoo.inference.Restorer`, with
  ``val.self_ensemble``, ``val.tile`` and ``val.tile_overlap``; see ``DeblurTraining``), through the bare network (or
  its EMA), by the net's declared frame mode (``deblurzoo/archs/protocol.py``): an image net restores each frame on
  its own, a window net each frame from the ``num_frame`` frames around it (BasicSR's 'replicate' window at the
  ends), a sequence net the whole sequence (frame by frame through ``stream`` where it has one, so memory does not grow
  with the length). ``val.flip_seq`` averages with a second, independent pass over the reversed sequence;
  ``val.center_frame_only`` keeps the centre frame, as in BasicSR; ``val.per_frame: true`` restores every frame as a
  one-frame video, without its neighbours (to score a video net without temporal context);
- ``val.save_img`` during training is refused when the model is built (BasicSR raises NotImplementedError at the
  first validation, after training for ``val_freq`` iterations);
- single-process validation runs the distributed loop directly, without BasicSR's warning at every validation.
"""
import torch

from basicsr.models.video_recurrent_model import VideoRecurrentModel
from basicsr.utils.registry import MODEL_REGISTRY
from .deblur_model import DeblurTraining


@MODEL_REGISTRY.register()
class VideoDeblurModel(DeblurTraining, VideoRecurrentModel):
    """Video deblurring model (see the module docstring). YAML: as BasicSR's VideoRecurrentModel."""

    def __init__(self, opt):
        if opt.get('is_train') and (opt.get('val') or {}).get('save_img'):
            raise ValueError('val.save_img: BasicSR\'s video validation cannot save images during training; set it to '
                             'false (test.py saves them: python deblurzoo/test.py -opt <test options>)')
        super().__init__(opt)

    def inference(self, net, lq):
        """Restore a sequence ``lq`` (b, t, 3, h, w) -> (b, t, 3, h, w) with ``net`` (bare, in eval mode)."""
        restorer = self.restorer(net)
        if (self.opt.get('val') or {}).get('per_frame', False):  # every frame on its own
            return torch.stack([restorer.image(frame) for frame in lq.unbind(1)], 1)
        return restorer.restore(lq)

    def test(self):
        val_opt = self.opt.get('val') or {}
        self.center_frame_only = val_opt.get('center_frame_only', False)  # read by BasicSR's validation loop
        super().test()
        if val_opt.get('flip_seq', False):
            forward = self.output
            self.lq = self.lq.flip(1)
            super().test()
            self.lq = self.lq.flip(1)
            self.output = 0.5 * (forward + self.output.flip(1))
        if self.center_frame_only:
            self.output = self.output[:, self.output.shape[1] // 2]

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        self.dist_validation(dataloader, current_iter, tb_logger, save_img)
