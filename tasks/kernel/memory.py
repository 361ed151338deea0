"""Give the memory a finished step freed back to the system before the next, bigger, one starts.

A step that held a million customers' tables frees them when it returns, but the process keeps the pages:
Arrow's memory pool holds its freed buffers for reuse, and glibc's ``malloc`` keeps a freed heap's pages unless
asked to trim it (Dask's workers trim the same way). The daily run does this before it starts its partitions'
processes and its render processes, so the process tree's peak is what is in use, not what once was.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable

import pyarrow as pa


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim  # glibc only; musl and macOS have none
    except (OSError, AttributeError):
        return None
    return trim


def give_back_memory() -> None:
    """Collect garbage, release Arrow's unused buffers and trim the C heap (where the C library can)."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
