"""Handing freed memory back to the operating system after a large one-off read."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc


def give_back_freed_memory() -> None:
    """After an index build: the store's rows (one small malloc'd buffer per embedding, ~2 KB each) are
    freed, but glibc keeps such freed heap memory for reuse, which held ~0.3x the raw vectors at 100k
    for as long as the matcher ran. malloc_trim returns it; elsewhere (no glibc) this only collects."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)
