"""SVDN's training model: pixel + perceptual + optical-flow position loss (paper 001, Eq. 7).

``L = 0.5 * MSE + 0.01 * perceptual + 1e-4 * position`` with the paper's weights set in ``options/train_svdn_*.yml``
(``pixel_opt``, ``perceptual_opt``, ``position_opt``). The position loss compares DCN1's sampling offsets (returned
by the arch in ``aux['offsets']``) with the bi-directional flows the dataset provides (``use_flow: true``).

``train.dcn_lr_mul`` (EDVR's key in BasicSR, default 1: the paper trains every parameter at one rate) scales the
learning rate of the deformable neck (its offset/mask predictors and the deformable convs). In short runs with small
batches at the paper's 1e-3 the offsets of DCN2, which no loss constrains, can run away within a few hundred
iterations: DCN2 then samples outside the feature map, the neck's output falls to ~0 and the net stays at the
identity of its global skip. A multiplier of 0.1 keeps them in range (``options/demo/train_svdn_demo.yml``).
"""
from basicsr.losses import build_loss
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY
from ..option_values import POSITIVE, check_value
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

    def optimizer_param_groups(self, lr):
        dcn_lr_mul = check_value('train.dcn_lr_mul', self.opt['train'].get('dcn_lr_mul', 1), POSITIVE)
        params = super().optimizer_param_groups(lr)
        if dcn_lr_mul == 1:
            return params
        net = self.get_bare_model(self.net_g)
        if not getattr(net, 'deform', False):
            raise ValueError(f'train.dcn_lr_mul is {dcn_lr_mul} but the network has no deformable neck '
                             f'({type(net).__name__} with deform: false); remove the key')
        neck = {id(p) for p in net.neck.parameters()}
        get_root_logger().info(f'Learning rate of the deformable neck: {dcn_lr_mul} x {lr}.')
        return [{'params': [p for p in params if id(p) not in neck]},
                {'params': [p for p in params if id(p) in neck], 'lr': lr * dcn_lr_mul}]

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
