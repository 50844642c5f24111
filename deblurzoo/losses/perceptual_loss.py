"""VGG16 perceptual loss as used by SVDN: Yuan, Su, Ma, "Spatially Variant Deconvolution Network with Optical Flow
Guided Training", CVPR 2020 (section 3.4, Eq. 9): ``1 / (2 N_c) * ||phi(L) - phi(S)||^2`` on the features of one
VGG16 layer.

The paper's "12th layer of VGG-16" is ambiguous; the default is ``conv3_3`` (see DESIGN.md) and the layer is a YAML
key. The ImageNet weights are read from a local file only (torchvision's ``vgg16-397923af.pth``); nothing is ever
downloaded.
"""
import logging
import os

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import LOSS_REGISTRY

__all__ = [
    'VGGPerceptualLoss', 'VGG16_LAYER_NAMES', 'VGG16_WEIGHTS_FILE', 'VGG16_WEIGHTS_ENV', 'find_vgg16_weights',
    'load_vgg16_features_state_dict'
]

VGG16_WEIGHTS_FILE = 'vgg16-397923af.pth'
VGG16_WEIGHTS_ENV = 'DEBLURZOO_VGG16_WEIGHTS'
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg16_layer_names():
    """Names of ``torchvision.models.vgg16().features`` in index order: conv1_1, relu1_1, ..., pool5."""
    names = []
    for block, num_convs in enumerate((2, 2, 3, 3, 3), start=1):
        for conv in range(1, num_convs + 1):
            names += [f'conv{block}_{conv}', f'relu{block}_{conv}']
        names.append(f'pool{block}')
    return tuple(names)


VGG16_LAYER_NAMES = _vgg16_layer_names()  # 31 names, index i = torchvision's features[i]


def _torchvision_cache_file():
    return os.path.join(torch.hub.get_dir(), 'checkpoints', VGG16_WEIGHTS_FILE)


def find_vgg16_weights(weights_path=None):
    """Locate the ImageNet VGG16 weights file; never downloads.

    Order: ``weights_path`` if given, else the environment variable ``DEBLURZOO_VGG16_WEIGHTS`` if set, else
    torchvision's cache ``<torch.hub.get_dir()>/checkpoints/vgg16-397923af.pth``. A path given explicitly (argument
    or environment variable) must exist; there is no silent fallback from it.

    Args:
        weights_path (str | None): explicit path. Default: None.

    Returns:
        str: the path of an existing file.

    Raises:
        FileNotFoundError: naming the file needed, where it was looked for and how to provide it.
    """
    if weights_path is not None:
        looked = [f'{weights_path} (`weights_path`)']
        found = weights_path if os.path.isfile(weights_path) else None
    elif os.environ.get(VGG16_WEIGHTS_ENV):
        env_path = os.environ[VGG16_WEIGHTS_ENV]
        looked = [f'{env_path} (environment variable {VGG16_WEIGHTS_ENV})']
        found = env_path if os.path.isfile(env_path) else None
    else:
        cache = _torchvision_cache_file()
        looked = [f'{cache} (torchvision cache; {VGG16_WEIGHTS_ENV} is not set, `weights_path` is null)']
        found = cache if os.path.isfile(cache) else None
    if found is None:
        raise FileNotFoundError(
            f"VGGPerceptualLoss(pretrained=True) needs torchvision's ImageNet VGG16 weights, the file "
            f"'{VGG16_WEIGHTS_FILE}' (https://download.pytorch.org/models/{VGG16_WEIGHTS_FILE}; deblurzoo never "
            f"downloads it). Looked for: {'; '.join(looked)}. Provide it in one of these ways: set "
            f"`weights_path: /path/to/{VGG16_WEIGHTS_FILE}` under `perceptual_opt` in the training option file; "
            f'or set the environment variable {VGG16_WEIGHTS_ENV}=/path/to/{VGG16_WEIGHTS_FILE}; or copy the file to '
            f"torchvision's cache {_torchvision_cache_file()}. Tests and demos without the file can use "
            '`pretrained: false` (random VGG16 weights: the loss then runs but is not a meaningful perceptual loss).')
    return found


def load_vgg16_features_state_dict(path):
    """Read a VGG16 checkpoint and return the state dict of its ``features`` part (keys ``'<index>.weight|bias'``).

    Accepts torchvision's ``vgg16-397923af.pth`` (a plain state dict), a dict wrapping it under ``'state_dict'`` or
    ``'params'``, keys prefixed by ``'module.'``, a checkpoint with only the ``features.*`` keys, or the state dict of
    ``vgg16().features`` itself. Loaded with ``weights_only=True`` on the CPU.

    Args:
        path (str): checkpoint file.

    Returns:
        dict[str, Tensor]: features state dict.
    """
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    for key in ('state_dict', 'params'):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path}: expected a VGG16 state dict, got {type(ckpt).__name__}')
    features = {}
    for key, value in ckpt.items():
        if key.startswith('module.'):
            key = key[len('module.'):]
        if key.startswith('features.'):
            features[key[len('features.'):]] = value
        elif key.split('.')[0].isdigit():
            features[key] = value
    if not features:
        sample = ', '.join(list(ckpt)[:5])
        raise ValueError(f'{path}: no VGG16 `features.*` weights found (first keys: {sample}); expected torchvision\'s '
                         f'{VGG16_WEIGHTS_FILE} state dict')
    return features


def _build_vgg16_features(num_layers):
    """``torchvision.models.vgg16().features[:num_layers]`` with torchvision's random initialisation of its convs.

    The full VGG16 is built on the meta device (its 120M-parameter classifier is never allocated); only the kept
    feature layers are materialised and initialised.
    """
    with torch.device('meta'):
        features = torchvision.models.vgg16(weights=None).features[:num_layers]
    features = features.to_empty(device='cpu')
    for module in features.modules():
        if isinstance(module, nn.Conv2d):  # torchvision's VGG init
            nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
            nn.init.zeros_(module.bias)
    return features


@LOSS_REGISTRY.register()
class VGGPerceptualLoss(nn.Module):
    """Perceptual loss on the features of one layer of a frozen VGG16.

    Args:
        layer (str): the last VGG16 layer kept, one of ``conv1_1, relu1_1, ..., conv5_3, relu5_3, pool1, ..., pool5``
            (torchvision's ``features`` order). Default: 'conv3_3'.
        loss_weight (float): weight of the loss (the paper's lambda_1). Default: 0.01.
        criterion (str): 'mse' -> ``0.5 * mean((phi(x) - phi(gt))^2)`` (the paper's Eq. 9), 'l1' -> mean absolute
            difference. Default: 'mse'.
        pretrained (bool): load ImageNet weights from a local file (see :func:`find_vgg16_weights`); False keeps a
            random initialisation (tests and demos). Default: True.
        weights_path (str | None): the weights file (torchvision's ``vgg16-397923af.pth``); None looks at the
            environment variable ``DEBLURZOO_VGG16_WEIGHTS``, then torchvision's cache. Ignored when not pretrained.
            Default: None.
        use_input_norm (bool): normalise the [0, 1] RGB input with ImageNet's mean and std. Default: True.
        range_norm (bool): map the input from [-1, 1] to [0, 1] first. Default: False.
    """

    def __init__(self,
                 layer='conv3_3',
                 loss_weight=0.01,
                 criterion='mse',
                 pretrained=True,
                 weights_path=None,
                 use_input_norm=True,
                 range_norm=False):
        super().__init__()
        if layer not in VGG16_LAYER_NAMES:
            raise ValueError(f'VGGPerceptualLoss: unknown VGG16 layer {layer!r}; valid names: '
                             f'{", ".join(VGG16_LAYER_NAMES)}')
        if criterion not in ('mse', 'l1'):
            raise ValueError(f"VGGPerceptualLoss: unsupported criterion {criterion!r}; choose 'mse' or 'l1'")
        self.layer = layer
        self.loss_weight = loss_weight
        self.criterion = criterion
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        self.weights_path = None

        self.vgg = _build_vgg16_features(VGG16_LAYER_NAMES.index(layer) + 1)
        if pretrained:
            path = find_vgg16_weights(weights_path)
            self._load(path)
            self.weights_path = path
            logging.getLogger('basicsr').info(f'VGGPerceptualLoss: VGG16 up to {layer} loaded from {path}')
        for param in self.vgg.parameters():
            param.requires_grad_(False)
        # (1, 3, 1, 1); buffers follow .to(device) and are not part of the state dict
        self.register_buffer('mean', torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.train(False)

    def _load(self, path):
        features = load_vgg16_features_state_dict(path)
        wanted = self.vgg.state_dict().keys()
        missing = [key for key in wanted if key not in features]
        if missing:
            raise ValueError(f'{path}: VGG16 weights up to {self.layer} are incomplete, missing features.'
                             f'{", features.".join(missing)}')
        try:
            self.vgg.load_state_dict({key: features[key] for key in wanted})
        except RuntimeError as err:
            raise ValueError(f'{path} does not hold VGG16 weights matching torchvision\'s vgg16: {err}') from err

    def train(self, mode=True):
        """The VGG stays in eval mode whatever ``mode`` is (it is a fixed feature extractor)."""
        return super().train(False)

    def extra_repr(self):
        return (f'layer={self.layer!r}, loss_weight={self.loss_weight}, criterion={self.criterion!r}, '
                f'weights_path={self.weights_path!r}, use_input_norm={self.use_input_norm}, '
                f'range_norm={self.range_norm}')

    def features(self, x):
        """(B, 3, H, W) images -> (B, C, h, w) VGG16 features of the selected layer."""
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        return self.vgg(x)

    def forward(self, x, gt):
        """
        Args:
            x (Tensor): (B, 3, H, W) restored images, RGB in [0, 1] ([-1, 1] with range_norm).
            gt (Tensor): (B, 3, H, W) ground-truth images, same range; its features get no gradient.

        Returns:
            Tensor: scalar, the weighted loss.
        """
        if x.dim() != 4 or x.shape[1] != 3 or x.shape != gt.shape:
            raise ValueError(f'VGGPerceptualLoss: expected x and gt of the same shape (B, 3, H, W), got '
                             f'{tuple(x.shape)} and {tuple(gt.shape)}')
        x_feat = self.features(x)  # (b, c, h, w)
        with torch.no_grad():
            gt_feat = self.features(gt.detach())  # (b, c, h, w)
        if self.criterion == 'mse':
            loss = 0.5 * F.mse_loss(x_feat, gt_feat)
        else:
            loss = F.l1_loss(x_feat, gt_feat)
        return self.loss_weight * loss
