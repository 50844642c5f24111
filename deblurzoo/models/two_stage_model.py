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
test time the inference engine's restorer (the CLI's) runs it on each frame with the same ``val.self_ensemble`` and
``val.tile`` as stage 2, before stage 2 sees the frame's window.
"""
import torch

from basicsr.archs import build_network
from basicsr.utils.registry import MODEL_REGISTRY
from ..inference.checkpoint import InferenceError, load_weights
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
        try:  # the inference engine's checkpoint loader, whatever BasicSR's load_network does
            load_weights(net, load_path, opt['path'].get('param_key_stage1', 'params'), opt['network_stage1']['type'],
                         opt['path'].get('strict_load_stage1', True))
        except InferenceError as err:
            raise RuntimeError(f'cannot load {type(net).__name__} weights: {err}') from None
        self.net_stage1 = net.to(self.device).eval().requires_grad_(False)
        self.print_network(self.net_stage1)

    def stage1(self, lq):
        """Stage 1 on every frame of a training clip ``lq`` (b, t, c, h, w) -> (b, t, c, h, w), as one batch of images,
        without gradients."""
        with torch.no_grad():
            return self.net_stage1(lq.flatten(0, 1)).view(lq.shape)

    def optimize_parameters(self, current_iter):
        self.lq = self.stage1(self.lq)
        super().optimize_parameters(current_iter)

    def restorer(self, net, **kwargs):
        return super().restorer(net, stage1=self.net_stage1, **kwargs)
