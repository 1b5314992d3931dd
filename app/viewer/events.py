"""A tiny event emitter (Qt-free), in the manner of napari's evented models.

``group = EmitterGroup(source, "window", "frame")`` gives ``group.window`` and ``group.frame``;
``group.window.connect(callback)`` subscribes; ``group.window(value)`` calls every callback with
an :class:`Event` (``event.type``, ``event.value``, ``event.source``), in the order they were
connected. ``with group.window.blocker():`` suppresses it for a while.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    type: str
    value: Any = None
    source: Any = None


Callback = Callable[[Event], Any]


class EventEmitter:
    def __init__(self, source: Any = None, type: str = "") -> None:  # noqa: A002 - napari's name
        self.source = source
        self.type = type
        self._callbacks: list[Callback] = []
        self._blocked = 0

    def connect(self, callback: Callback) -> Callback:
        """Call ``callback(event)`` on every emission (once, however often it is connected)."""
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callback | None = None) -> None:
        """Stop calling ``callback`` (every callback when None)."""
        if callback is None:
            self._callbacks.clear()
        elif callback in self._callbacks:
            self._callbacks.remove(callback)

    @property
    def callbacks(self) -> tuple[Callback, ...]:
        return tuple(self._callbacks)

    def __call__(self, value: Any = None) -> Event | None:
        if self._blocked:
            return None
        event = Event(self.type, value, self.source)
        for callback in list(self._callbacks):
            callback(event)
        return event

    @contextmanager
    def blocker(self) -> Iterator[None]:
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1


class EmitterGroup:
    """One :class:`EventEmitter` attribute per event name."""

    def __init__(self, source: Any, *names: str) -> None:
        self._names = names
        for name in names:
            setattr(self, name, EventEmitter(source, name))

    def names(self) -> tuple[str, ...]:
        return self._names

    def emitters(self) -> list[EventEmitter]:
        return [getattr(self, n) for n in self._names]
