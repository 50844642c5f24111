"""deblurzoo's trainer extensions for BasicSR's pipelines (enabled by ``deblurzoo/train.py`` and ``deblurzoo/test.py``,
and by ``with deblurzoo.trainer_extensions(): train_pipeline(root)`` in other projects); see ``extensions.py``."""
from .checkpoints import CheckpointingMixin, extended_model_class, rng_state, set_rng_state  # noqa: F401
from .extensions import (ResumableSampler, TrainerExtensions, build_loss, build_model, build_network,  # noqa: F401
                         trainer_extensions)
