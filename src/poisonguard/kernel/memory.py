"""Giving freed memory back to the system between the stages of a large batch.

A 1M-row part read, scored and dropped leaves its memory with the allocators that served it:
pyarrow's pool (mimalloc) keeps freed blocks for reuse, and glibc keeps freed heap below its trim
threshold. Both are reused, but a process that reads a part, then merges 10M rows of scores, then
writes outputs holds each stage's high-water mark on top of the next one's. Measured on a 10M-row
batch in 10 files: ~0.35 GiB held this way after scoring a part.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_memory() -> None:
    """Return what the allocators hold but no object uses (a few ms; a no-op where unsupported)."""
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.default_memory_pool().release_unused()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
