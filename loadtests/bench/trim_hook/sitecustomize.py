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
