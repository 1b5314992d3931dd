"""Decode in a separate process, so that a decoder crash cannot take the application down.

A damaged file can make a native decoder abort the whole process (SIGABRT under a memory limit,
a segfault): ``except`` cannot catch that. :class:`GuardedReader` runs :func:`read_image` in one
long-lived worker process (started with "spawn", reused, so only the first image pays the start),
under an address-space limit derived from the decode budget, with a timeout. If the worker dies
or hangs, the caller gets one readable :class:`CorruptImageError` and the next call starts a fresh
worker. Thread-safe; Qt-free (the GUI calls it from its decoding thread).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ml.errors import CorruptImageError, CxrError
from ml.imaging.image import XRayImage

_GIB = 1 << 30


def _limit_memory(limit: int) -> None:  # runs in the worker
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # not on this platform: the timeout still guards
        pass


def _read(path: str) -> XRayImage:  # runs in the worker
    from ml.imaging.read import read_image

    image = read_image(path)
    image.dataset = _without_pixels(image.dataset)
    return image


def _read_with_pixel_data(path: str) -> XRayImage:  # runs in the worker
    from ml.imaging.read import read_image

    return read_image(path)


def _without_pixels(ds: Any) -> Any:
    """The dataset minus its (already decoded) pixel data: half the bytes to send back."""
    if ds is None:
        return None
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in ds:
            del ds[keyword]
    return ds


class GuardedReader:
    """``read(path)`` = :func:`ml.imaging.read.read_image` in a worker process."""

    def __init__(self, timeout_s: float = 120.0, memory_limit: int | None = None) -> None:
        from ml.imaging.decoding import memory_budget

        self.timeout_s = timeout_s
        # the decoded image, a copy in the pipe and the interpreter with numpy/pydicom loaded
        self.memory_limit = memory_limit or 3 * memory_budget() + 2 * _GIB
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_limit_memory, initargs=(self.memory_limit,),
            )
        return self._pool

    def read(self, path: str | os.PathLike[str], keep_pixel_data: bool = False) -> XRayImage:
        """``keep_pixel_data``: the dataset keeps its (encoded) pixel data element, as a tag
        panel shows it; otherwise it is dropped (fewer bytes to send back)."""
        fn = _read_with_pixel_data if keep_pixel_data else _read
        return self.run(fn, os.fspath(path), name=Path(path).name)

    def run(self, fn: Callable[..., Any], *args: Any, name: str = "the file") -> Any:
        """``fn(*args)`` in the worker; ``fn`` must be importable (a module-level function)."""
        with self._lock:
            future = self._executor().submit(fn, *args)
            try:
                return future.result(timeout=self.timeout_s)
            except CxrError:
                raise
            except MemoryError:
                raise CorruptImageError(f"{name}: decoding it needs more memory than allowed.") from None
            except BrokenProcessPool:
                self._discard()
                raise CorruptImageError(f"{name} is damaged: the decoder crashed on it.") from None
            except FutureTimeout:
                self._discard(kill=True)
                raise CorruptImageError(
                    f"{name}: decoding took longer than {self.timeout_s:.0f} s and was stopped."
                ) from None

    def _discard(self, kill: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if kill:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> GuardedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
