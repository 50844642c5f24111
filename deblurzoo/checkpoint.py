"""Writing checkpoint files: :func:`atomic_save` writes so that a kill or a full disk never leaves a partial file
behind. Reading them is the inference engine's (``deblurzoo.inference.checkpoint``, the one loader for training,
the CLI and the scripts)."""
import contextlib
import errno
import os
import time

import torch


def _os_error(err):
    """The first OSError with an errno in ``err``'s chain of causes, or None."""
    while err is not None:
        if isinstance(err, OSError) and err.errno is not None:
            return err
        err = err.__cause__ or err.__context__
    return None


def atomic_save(obj, path, retries=3):
    """``torch.save(obj, path)`` that never leaves a partial file at ``path``: write ``<path>.tmp`` in the same folder,
    flush it to disk, then rename it over ``path``. On failure the temporary file is removed and an OSError names
    ``path``; whatever was at ``path`` before is untouched. ``retries`` tries in all (BasicSR retries for network file
    systems)."""
    tmp = f'{path}.tmp'
    for attempt in range(1, retries + 1):
        try:
            with open(tmp, 'wb') as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            return
        except BaseException as err:  # noqa: BLE001 - also KeyboardInterrupt: never leave the partial file behind
            with contextlib.suppress(OSError):
                os.remove(tmp)
            if not isinstance(err, Exception):
                raise
            if attempt == retries:
                cause = _os_error(err)  # torch's writer reports a failed write as "unexpected pos ..."
                reason = cause.strerror if cause is not None else str(err)
                raise OSError(cause.errno if cause is not None else errno.EIO,
                              f'cannot save {path} ({reason}); nothing was overwritten and the previous checkpoints '
                              'are intact: free space or fix the folder, then restart with --auto_resume') from err
            time.sleep(1)
