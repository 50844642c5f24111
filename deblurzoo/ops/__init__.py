"""Operators shared by deblurzoo's architectures: modulated deformable convolution with selectable backends."""
from .deform_conv import (DCNv2Pack, ModulatedDeformConv, ModulatedDeformConvPack, available_backends, deform_conv2d,
                          get_backend, set_backend, use_backend)

__all__ = [
    'deform_conv2d', 'ModulatedDeformConv', 'ModulatedDeformConvPack', 'DCNv2Pack', 'set_backend', 'get_backend',
    'use_backend', 'available_backends'
]
