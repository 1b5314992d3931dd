"""Qt-free progress reporting and cancellation for long-running ml functions.

Long functions take ``progress: ProgressCallback | None`` and ``cancel: CancelToken | None`` and
call ``check()`` once per batch/chunk. The GUI adapts these to signals; the CLI prints or ignores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ml.errors import CancelledError

# progress(done, total, message) ; total may be 0 when unknown
ProgressCallback = Callable[[int, int, str], None]


class CancelToken:
    """Thread-safe cancel flag checked by long-running loops."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`CancelledError` if cancellation was requested."""
        if self._event.is_set():
            raise CancelledError("Cancelled by the user.")


def report(progress: ProgressCallback | None, done: int, total: int, message: str = "") -> None:
    if progress is not None:
        progress(done, total, message)


def check(cancel: CancelToken | None) -> None:
    if cancel is not None:
        cancel.check()
