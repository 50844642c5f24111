"""Two-stage video deblurring (Brehm et al., NTIRE 2020): a frozen single-image stage 1 pre-deblurs every frame, and
stage 2 (``network_g``, e.g. ``MLFANet``) trains and tests on its outputs.

Stage 1 runs on the fly, on each batch's frames, so the dataset's stage-1 outputs are never written to disk (the
price: stage 1's forward pass at every iteration, without gradients). YAML, on top of ``VideoDeblurModel``'s::

    model_type: TwoStageVideoModel
    network_stage1: {type: AtrousNet, ...}        # any image arch
    path:
      pretrain_network_stage1: experiments/<stage 1 run>/models/net_g_latest.pth   # required
      param_key_stage1: params                    # or params_ema
      strict_load_stage1: true

Stage 1 is frozen (no gradients, always in eval mode, never wrapped for DDP, not saved with stage 2's checkpoints:
resuming reloads it from ``pretrain_network_stage1``). In training, a clip's frames go through it as one batch; at
test time a sequence goes through it ``stage1_chunk`` frames at a time (``val.stage1_chunk``, default 1) with the
same ``val.self_ensemble`` as stage 2.
"""
import torch

from basicsr.archs import build_network
from basicsr.utils.registry import MODEL_REGISTRY
from .deblur_model import split_output
from .test_time import ensemble_size, self_ensemble
from .video_deblur_model import VideoDeblurModel


@MODEL_REGISTRY.register()
class TwoStageVideoModel(VideoDeblurModel):
    """Stage 2 (``network_g``) on the outputs of a frozen stage 1 (``network_stage1``); see the module docstring."""

    def __init__(self, opt):
        if not opt.get('network_stage1'):
            raise ValueError('TwoStageVideoModel needs network_stage1 (the frozen single-image stage 1, e.g. '
                             '{type: AtrousNet}); without a stage 1 use model_type: VideoDeblurModel')
        load_path = (opt.get('path') or {}).get('pretrain_network_stage1')
        if not load_path:
            raise ValueError('TwoStageVideoModel: set path.pretrain_network_stage1 to the trained stage 1 checkpoint '
                             '(e.g. experiments/<stage 1 run>/models/net_g_latest.pth); an untrained stage 1 would '
                             'feed stage 2 noise')
        super().__init__(opt)
        net = build_network(opt['network_stage1'])
        self.load_network(net, load_path, opt['path'].get('strict_load_stage1', True),
                          opt['path'].get('param_key_stage1', 'params'))
        self.net_stage1 = net.to(self.device).eval().requires_grad_(False)
        self.print_network(self.net_stage1)

    def stage1(self, lq, chunk=None, ensemble=False):
        """Stage 1 on every frame of ``lq`` (b, t, c, h, w) -> (b, t, c, h, w), without gradients.

        Args:
            chunk (int | None): Frames per call; None: all at once. Default: None.
            ensemble (bool): Apply ``val.self_ensemble`` (test time). Default: False.
        """
        frames = lq.flatten(0, 1)  # stage 1 is an image net: frames as a batch, not through the video restore()

        def run(x):
            return split_output(self.net_stage1(x))[0]

        num = ensemble_size((self.opt.get('val') or {}).get('self_ensemble')) if ensemble else 1
        with torch.no_grad():
            out = torch.cat([self_ensemble(run, part, num) for part in frames.split(chunk or len(frames))])
        return out.view(lq.shape)

    def feed_data(self, data):
        super().feed_data(data)
        self._stage1_done = False  # stage 1 runs in optimize_parameters or test, which know the phase

    def _run_stage1(self, **kwargs):
        if not self._stage1_done:
            self.lq = self.stage1(self.lq, **kwargs)
            self._stage1_done = True

    def optimize_parameters(self, current_iter):
        self._run_stage1()
        super().optimize_parameters(current_iter)

    def test(self):
        self._run_stage1(chunk=(self.opt.get('val') or {}).get('stage1_chunk', 1), ensemble=True)
        super().test()
