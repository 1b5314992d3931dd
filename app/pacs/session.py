"""What the PACS dialog and the Query/Retrieve dock share: the configured nodes, the receiver
settings and the running C-STORE receiver. Qt-free.

The node file and the receiver settings live in the user's data folder (``ml.pacs.nodes``; the
node file is written 0600: it may hold passwords and tokens). Listeners are told when either
changes. The receiver calls ``on_instance(path)`` from its own network thread; the Qt side turns
that into a queued signal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml.errors import CxrError
from ml.pacs.nodes import (
    DEFAULT_AET,
    Node,
    ReceiverSettings,
    load_nodes,
    load_receiver,
    save_nodes,
    save_receiver,
)


class PacsSession:
    def __init__(self, on_instance: Callable[[Path], None] | None = None, nodes_path: Path | None = None,
                 receiver_path: Path | None = None, receiver_host: str = "0.0.0.0") -> None:
        self.on_instance = on_instance
        self.nodes_path, self.receiver_path = nodes_path, receiver_path
        self.receiver_host = receiver_host
        self.nodes: dict[str, Node] = {}
        self.receiver_settings = ReceiverSettings()
        self.receiver: Any = None  # ml.pacs.receiver.StoreReceiver while it listens
        self.receiver_error = ""
        self.load_error = ""
        self.listeners: list[Callable[[], None]] = []
        self.load()

    # -- settings ----------------------------------------------------------------------------------
    def load(self) -> str:
        """Read the node file and the receiver settings; the readable error ("" when fine)."""
        self.load_error = ""
        try:
            self.nodes = load_nodes(self.nodes_path)
        except CxrError as exc:
            self.nodes, self.load_error = {}, str(exc)
        try:
            self.receiver_settings = load_receiver(self.receiver_path)
        except CxrError as exc:
            self.receiver_settings = ReceiverSettings()
            self.load_error = self.load_error or str(exc)
        return self.load_error

    def save(self, nodes: dict[str, Node], receiver: ReceiverSettings) -> Path:
        """Write both files, then (re)start or stop the receiver; raises CxrError if a file cannot be written."""
        path = save_nodes(nodes, self.nodes_path)
        save_receiver(receiver, self.receiver_path)
        self.nodes = dict(nodes)
        changed = receiver != self.receiver_settings
        self.receiver_settings = receiver
        if changed or (receiver.enabled and self.receiver is None):
            self.apply_receiver()
        self._changed()
        return path

    @property
    def calling_aet(self) -> str:
        """Our AE title towards the PACS: the receiver's (a C-MOVE destination must be us)."""
        return self.receiver_settings.ae_title or DEFAULT_AET

    # -- the receiver ------------------------------------------------------------------------------
    @property
    def receiver_running(self) -> bool:
        return self.receiver is not None and self.receiver.running

    def apply_receiver(self) -> str:
        """Listen when enabled (restarting on new settings), stop when not; the error or ""."""
        from ml.pacs.receiver import StoreReceiver

        self.stop_receiver()
        self.receiver_error = ""
        s = self.receiver_settings
        if s.enabled:
            problems = s.problems()
            if problems:
                self.receiver_error = problems[0]
            else:
                try:
                    self.receiver = StoreReceiver(s.port, s.ae_title, host=self.receiver_host,
                                                  on_instance=self.on_instance).start()
                except CxrError as exc:
                    self.receiver, self.receiver_error = None, str(exc)
        self._changed()
        return self.receiver_error

    def receiver_status(self) -> str:
        s = self.receiver_settings
        if self.receiver_running:
            return f"Receiver listening on port {s.port} as {s.ae_title}: incoming studies open in the browser."
        if self.receiver_error:
            return f"Receiver not running: {self.receiver_error}"
        return "Receiver off (C-MOVE needs it; C-GET and WADO-RS do not)."

    def stop_receiver(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None

    def shutdown(self) -> None:
        self.stop_receiver()
        self.listeners.clear()

    def _changed(self) -> None:
        for listener in list(self.listeners):
            listener()
