"""How an arch consumes frames: declared once on each arch class, read by every consumer through :func:`arch_info`.

Every registered deblurzoo arch declares, as a class attribute, what kind of input it takes::

    @ARCH_REGISTRY.register()
    class SARNMulti(nn.Module):
        protocol = ArchProtocol('window')

Modes:

- ``'image'``: ``(b, c, h, w)`` -> ``(b, c, h, w)``; a video is restored frame by frame;
- ``'window'``: a clip of ``num_frame`` frames ``(b, num_frame, c, h, w)`` -> its centre frame ``(b, c, h, w)``; a
  video is restored from the window around each frame (the ends repeat the first/last frame). The arch stores its
  window length as ``self.num_frame`` (a constructor argument);
- ``'sequence'``: a clip of any length ``(b, t, c, h, w)`` -> ``(b, t, c, h, w)`` in one call; with ``stream=True``
  the arch also has ``stream(frames)``, an iterator of restored frames ``(b, c, h, w)`` over an iterable of blurry
  ones, giving what one call gives but with memory constant in the length.

``sampling=True`` declares a net that takes a sampling ``policy`` ('uniform', 'sample', 'greedy') in its forward;
the instance's ``adaptive`` property says whether this one has a learned sampler (SAPHNet, DMPHN).

Models (validation and test), the inference engine, the cost, benchmark and export scripts and the tests read the
mode here, so an arch is never guessed from its attributes. Classes of other projects (e.g. BasicSR's archs) that
declare nothing are image nets.
"""
from dataclasses import dataclass

MODES = ('image', 'window', 'sequence')


@dataclass(frozen=True)
class ArchProtocol:
    """What an arch class declares (see the module docstring).

    Args:
        mode (str): 'image', 'window' or 'sequence'.
        stream (bool): A sequence net's ``stream(frames)`` restores frame by frame. Default: False.
        sampling (bool): ``forward`` takes a sampling ``policy``. Default: False.
    """

    mode: str
    stream: bool = False
    sampling: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f'ArchProtocol.mode: one of {", ".join(MODES)}, got {self.mode!r}')
        if self.stream and self.mode != 'sequence':
            raise ValueError('ArchProtocol.stream: only sequence nets stream')


IMAGE = ArchProtocol('image')


@dataclass(frozen=True)
class ArchInfo:
    """What a built net is, for its consumers (:func:`arch_info`).

    Attributes:
        mode (str): 'image', 'window' or 'sequence'.
        num_frame (int): Frames per call for window nets; 1 for image nets; None (any) for sequence nets.
        stream (bool): ``net.stream(frames)`` restores a video frame by frame.
        sampling (bool): ``net(x, policy=...)`` takes a sampling policy.
        adaptive (bool): The net has a learned sampler (policies other than 'uniform' apply).
    """

    mode: str
    num_frame: int = 1
    stream: bool = False
    sampling: bool = False
    adaptive: bool = False

    @property
    def video(self):
        """Whether the net takes clips (window or sequence)."""
        return self.mode != 'image'


def declared(cls):
    """The :class:`ArchProtocol` a class declares itself (not inherited), or None."""
    value = vars(cls).get('protocol')
    return value if isinstance(value, ArchProtocol) else None


def arch_protocol(net_or_cls):
    """The :class:`ArchProtocol` of an arch instance or class: its declaration (inherited ones count), or image for
    classes that declare none (other projects' archs)."""
    cls = net_or_cls if isinstance(net_or_cls, type) else type(net_or_cls)
    value = getattr(cls, 'protocol', None)
    return value if isinstance(value, ArchProtocol) else IMAGE


def arch_info(net):
    """What ``net`` (a built arch, not a DDP wrapper) is: its declared mode with the instance's window length and
    sampler (:class:`ArchInfo`)."""
    proto = arch_protocol(net)
    if proto.mode == 'window':
        num_frame = net.num_frame
        if not isinstance(num_frame, int) or num_frame < 1:
            raise TypeError(f'{type(net).__name__} declares a window protocol, so its num_frame must be an int >= 1; '
                            f'got {num_frame!r}')
    else:
        num_frame = 1 if proto.mode == 'image' else None
    adaptive = bool(net.adaptive) if proto.sampling else False
    return ArchInfo(proto.mode, num_frame, proto.stream, proto.sampling, adaptive)


def frame_mode(net):
    """'image', 'window' or 'sequence' (:func:`arch_info`)."""
    return arch_protocol(net).mode
