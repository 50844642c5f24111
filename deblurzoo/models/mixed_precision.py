"""Mixed-precision training for every deblurzoo model: ``train.amp``, ``train.channels_last`` and ``train.compile``.

BasicSR 1.4.2 trains in float32 only. :class:`MixedPrecision` holds what a training step needs for the YAML keys::

    train:
      amp: bf16             # bf16 | fp16 | false (default): autocast around the network's training forward
      channels_last: false  # the network's weights in channels-last memory format (faster convolutions on GPUs)
      compile: false        # true, or a dict of torch.compile keyword arguments: the network compiled in place

- the network's forward runs under ``torch.autocast`` in the chosen dtype; its outputs (image and auxiliary tensors)
  come back as float32, and every loss is computed outside autocast, in float32; validation and metrics too;
- fp16 uses a gradient scaler (``torch.amp.GradScaler``; CPU and CUDA): the loss is scaled before ``backward``, the
  gradients unscaled before they are checked, and a step whose gradients overflowed (loss finite) is skipped by the
  scaler, which lowers its scale (not a non-finite step for ``train.nan_policy``). The scaler's state is part of the
  training state (``grad_scaler``), so a resumed run continues with the same scale;
- bf16 has float32's range and needs no scaler;
- the deformable convolution runs in float32 under autocast (``deblurzoo.ops``), attention softmaxes follow autocast's
  rules;
- ``compile`` uses ``nn.Module.compile`` (in place), so parameter names and checkpoints are unchanged; the first
  steps are slow while it compiles, and a new input size in validation compiles again.
"""
import torch

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def _flag(train_opt, key):
    value = train_opt.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f'train.{key} must be true or false, got {value!r}')
    return value


def to_float32(obj):
    """``obj`` with every floating-point tensor in it (also inside tuples, lists and dicts) as float32."""
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_float32(v) for v in obj)
    if isinstance(obj, dict):
        return type(obj)((k, to_float32(v)) for k, v in obj.items())
    return obj


class MixedPrecision:
    """Autocast, gradient scaling, memory format and compilation of one training network (see the module doc).

    Args:
        train_opt (dict): The option file's ``train`` section (``amp``, ``channels_last``, ``compile`` are read and
            checked; an unknown value raises ValueError naming the key and the value).
    """

    def __init__(self, train_opt):
        amp = train_opt.get('amp', False)
        if amp is None or amp is False:
            amp = False
        elif not isinstance(amp, str) or amp not in AMP_DTYPES:
            raise ValueError(f"train.amp: unknown value {amp!r}; use one of {', '.join(AMP_DTYPES)} or false")
        self.mode = amp
        self.dtype = AMP_DTYPES.get(amp)
        self.channels_last = _flag(train_opt, 'channels_last')
        compile_opt = train_opt.get('compile', False)
        if not isinstance(compile_opt, (bool, dict)):
            raise ValueError(f'train.compile must be true, false or a dict of torch.compile arguments, got '
                             f'{compile_opt!r}')
        self.compile = {} if compile_opt is True else compile_opt if compile_opt else None
        self.device_type = 'cpu'
        self.scaler = None

    def prepare_network(self, net, device):
        """Put ``net`` on ``device`` in the chosen memory format and compile it (before any DDP wrapper)."""
        self.device_type = torch.device(device).type
        if self.mode == 'fp16' and self.scaler is None:
            self.scaler = torch.amp.GradScaler(self.device_type)
        net = net.to(device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        if self.compile is not None:
            net.compile(**self.compile)
        return net

    def autocast(self):
        """The context of the training forward: autocast in ``train.amp``'s dtype, or nothing."""
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def backward(self, loss):
        """``loss.backward()``, scaled for fp16; the gradients come back unscaled (:meth:`unscale`)."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer):
        """Divide ``optimizer``'s gradients by the fp16 scale (before they are checked or clipped)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def overflowed(self, loss_finite, grads_finite):
        """Whether a step is an fp16 overflow (finite loss, non-finite gradients) that the scaler handles."""
        return self.scaler is not None and loss_finite and not grads_finite

    def step(self, optimizer):
        """``optimizer.step()``; with the fp16 scaler, skipped when the gradients overflowed, and the scale updated."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def skip(self):
        """A step dropped without :meth:`step` after :meth:`unscale`: the scaler forgets it (and lowers its scale
        if the gradients were not finite)."""
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self):
        """What a training state keeps: the fp16 scaler's state (empty without a scaler)."""
        return {} if self.scaler is None else {'grad_scaler': self.scaler.state_dict()}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict`'s output (a state without a scaler leaves a fresh one)."""
        if self.scaler is not None and state.get('grad_scaler'):
            self.scaler.load_state_dict(state['grad_scaler'])
