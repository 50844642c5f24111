"""SVDN's training model: pixel + perceptual + optical-flow position loss (paper 001, Eq. 7).

``L = 0.5 * MSE + 0.01 * perceptual + 1e-4 * position`` with the paper's weights set in ``options/train_svdn_*.yml``
(``pixel_opt``, ``perceptual_opt``, ``position_opt``). The position loss compares DCN1's sampling offsets (returned
by the arch in ``aux['offsets']``) with the bi-directional flows the dataset provides (``use_flow: true``).
"""
from basicsr.losses import build_loss
from basicsr.utils.registry import MODEL_REGISTRY
from .deblur_model import DeblurModel


@MODEL_REGISTRY.register()
class SVDNModel(DeblurModel):
    """DeblurModel with SVDN's position loss (``train.position_opt``, optional)."""

    def init_training_settings(self):
        position_opt = self.opt['train'].get('position_opt')
        self.cri_position = None
        if position_opt and position_opt.get('loss_weight', 1) > 0:
            train_set = self.opt.get('datasets', {}).get('train', {})
            if not train_set.get('use_flow', False):
                raise ValueError('train.position_opt.loss_weight is above zero but datasets.train.use_flow is not '
                                 'true: the position loss needs optical flows (compute them with '
                                 'scripts/compute_flows.py and set use_flow: true), or set position_opt.loss_weight: 0')
            self.cri_position = build_loss(position_opt).to(self.device)
        super().init_training_settings()

    def compute_losses(self, aux):
        losses = super().compute_losses(aux)
        if self.cri_position is not None:
            if 'offsets' not in aux:
                raise ValueError('train.position_opt is set but the network returned no deformable offsets '
                                 '(SVDN with deform: false has none); remove position_opt or enable deform')
            if getattr(self, 'flow', None) is None:
                raise ValueError("train.position_opt is set but the training batch has no 'flow' "
                                 '(datasets.train.use_flow must be true)')
            losses['l_position'] = self.cri_position(aux['offsets'], self.flow)
        return losses
