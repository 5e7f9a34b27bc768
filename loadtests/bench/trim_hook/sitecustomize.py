"""Benchmark-only hook (memory section): on SIGUSR1, collect garbage and hand freed heap pages
back to the OS (glibc malloc_trim), so RSS shows what the process still uses rather than what
its allocators keep cached. Loaded only when the benchmark puts this folder first on
PYTHONPATH for the API process it measures; the engine itself never imports it."""

import ctypes
import ctypes.util
import gc
import signal


def _trim(*_: object) -> None:
    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: gc.collect alone
        pass


signal.signal(signal.SIGUSR1, _trim)


def _census(*_: object) -> None:
    """SIGUSR2: count live objects by type into $BENCH_HEAP_DUMP/heap-<pid>-<n>.json, so the
    benchmark can tell objects the process still holds from allocator caching."""
    import collections
    import json
    import os

    folder = os.environ.get("BENCH_HEAP_DUMP")
    if not folder:
        return
    gc.collect()
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    _census.n = getattr(_census, "n", 0) + 1
    path = os.path.join(folder, f"heap-{os.getpid()}-{_census.n}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(dict(counts), f)
    os.replace(path + ".tmp", path)


signal.signal(signal.SIGUSR2, _census)
