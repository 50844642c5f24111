"""Helpers shared by deblurzoo's datasets."""
import difflib

# keys BasicSR's pipeline itself reads from a dataset's options (dataloader, sampler, prefetcher, option parser)
BASICSR_DATASET_KEYS = frozenset({
    'name', 'type', 'phase', 'scale', 'num_worker_per_gpu', 'batch_size_per_gpu', 'dataset_enlarge_ratio',
    'prefetch_mode', 'pin_memory', 'persistent_workers', 'num_prefetch_queue', 'use_shuffle'
})


def check_option_keys(opt, accepted, owner):
    """Raise a ValueError naming every key of ``opt`` that neither ``owner`` nor BasicSR reads (a typo in a YAML
    must not be silently ignored), with the closest accepted key and the accepted list."""
    allowed = set(accepted) | BASICSR_DATASET_KEYS
    unknown = [k for k in opt if k not in allowed]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, allowed, n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ''))
        raise ValueError(f"{owner} '{opt.get('name', '')}': unknown option {', '.join(hints)}; "
                         f"accepted: {', '.join(sorted(accepted))}")
