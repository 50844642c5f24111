"""The video deblurring model: BasicSR's ``VideoRecurrentModel`` with deblurzoo's training step and inference.

Training takes clips ``lq`` (b, t, 3, h, w) and targets ``gt`` of the same shape (recurrent nets, e.g.
``SARNRecurrent``) or the centre frame (b, 3, h, w) (window nets such as ``SARNMulti``, trained on ``DVDDataset``
with ``center_frame_only: true``). Validation and testing are BasicSR's: whole sequences (``DVDTestDataset``), PSNR and
SSIM per frame, averaged per sequence and then over sequences; it runs on CPU and with gloo thanks to
``deblurzoo.compat``. Differences from ``VideoRecurrentModel`` (and only these):

- optimisers, schedulers (``PolyLR`` too), losses and the training step are :class:`DeblurTraining`'s (options never
  mutated; a perceptual loss sees the clip's frames as images); ``flow_lr_mul`` / ``fix_flow`` (BasicVSR's SpyNet
  settings) do not apply;
- test-time inference goes through the bare network (or its EMA) in :meth:`VideoDeblurModel.restore`, averaged over
  ``val.self_ensemble``'s flips and rotations when set (``DeblurTraining.inference``): a window net (one with a
  ``num_frame`` attribute) restores each frame from the ``num_frame`` frames around it (BasicSR's
  ``generate_frame_indices``, 'replicate' at the ends), any other net takes the whole sequence in one call (recurrent
  nets carry their state through it, so memory grows only with the output). ``val.flip_seq`` averages with a second,
  independent pass over the reversed sequence; ``val.center_frame_only`` keeps the centre frame, as in BasicSR;
  ``val.per_frame: true`` runs an image net on each frame on its own (to score a single-image model, e.g. a two-stage
  model's stage 1, on video sequences the way video models are scored);
- ``val.save_img`` during training is refused when the model is built (BasicSR raises NotImplementedError at the
  first validation, after training for ``val_freq`` iterations);
- single-process validation runs the distributed loop directly, without BasicSR's warning at every validation.
"""
import torch

from basicsr.data.data_util import generate_frame_indices
from basicsr.models.video_recurrent_model import VideoRecurrentModel
from basicsr.utils.registry import MODEL_REGISTRY
from .deblur_model import DeblurTraining, split_output


@MODEL_REGISTRY.register()
class VideoDeblurModel(DeblurTraining, VideoRecurrentModel):
    """Video deblurring model (see the module docstring). YAML: as BasicSR's VideoRecurrentModel."""

    def __init__(self, opt):
        if opt.get('is_train') and (opt.get('val') or {}).get('save_img'):
            raise ValueError('val.save_img: BasicSR\'s video validation cannot save images during training; set it to '
                             'false (test.py saves them: python deblurzoo/test.py -opt <test options>)')
        super().__init__(opt)

    def restore(self, net, lq):
        """Restore a sequence ``lq`` (b, t, 3, h, w) -> (b, t, 3, h, w) with ``net`` (bare, in eval mode)."""
        t = lq.shape[1]
        if (self.opt.get('val') or {}).get('per_frame', False):  # an image net, one frame after another
            return torch.stack([split_output(net(lq[:, i]))[0] for i in range(t)], 1)
        num_frame = getattr(net, 'num_frame', None)
        if num_frame is None:
            return split_output(net(lq))[0]
        frames = [split_output(net(lq[:, generate_frame_indices(i, t, num_frame, 'replicate')]))[0] for i in range(t)]
        return torch.stack(frames, 1)

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
