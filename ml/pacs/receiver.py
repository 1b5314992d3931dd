"""An optional C-STORE SCP (pynetdicom): the app's own storage receiver, the C-MOVE destination.

Off unless started. Each incoming instance is written atomically (temporary name, then rename) to
``<root>/<StudyInstanceUID>/<SOPInstanceUID>.dcm`` (root: ``<user cache>/pacs`` by default) and
reported through ``on_instance(path)``. While a C-MOVE retrieve is running, :meth:`capture` sends
that study's instances into the retrieve's staging folder instead (not reported: the retrieve opens
the whole study when it is complete); after a cancelled or failed move the study's late instances
are refused for a while, so a cancel leaves nothing behind. Not for diagnostic use.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom import sop_class as _sop_class

from ml.fileio import follow_umask
from ml.pacs.nodes import DEFAULT_AET, PacsError, retrieve_cache

log = logging.getLogger("cxr.pacs")
_UID = set("0123456789.")


class StoreReceiver:
    def __init__(self, port: int, ae_title: str = DEFAULT_AET, root: Path | None = None,
                 host: str = "127.0.0.1", on_instance: Callable[[Path], None] | None = None) -> None:
        self.port, self.ae_title, self.host = int(port), ae_title, host
        self.root = Path(root) if root is not None else retrieve_cache()
        self.on_instance = on_instance
        self.received: list[Path] = []
        self._server: Any = None
        self._lock = threading.Lock()
        self._captures: dict[str, Path] = {}  # study UID -> staging folder of a running C-MOVE
        self._refused: dict[str, float] = {}  # study UID -> refuse its instances until (monotonic)

    @property
    def running(self) -> bool:
        return self._server is not None

    @contextmanager
    def capture(self, study_uid: str, folder: Path, refuse_after_s: float = 60.0) -> Iterator[None]:
        """Instances of ``study_uid`` go into ``folder`` while inside (a C-MOVE's staging); if the
        block fails or is cancelled, that study's late instances are refused for ``refuse_after_s``."""
        with self._lock:
            self._captures[study_uid] = Path(folder)
            self._refused.pop(study_uid, None)
        ok = False
        try:
            yield
            ok = True
        finally:
            with self._lock:
                self._captures.pop(study_uid, None)
                if not ok:
                    self._refused[study_uid] = time.monotonic() + refuse_after_s

    def _on_store(self, event) -> int:  # noqa: ANN001 - pynetdicom Event
        study = str(event.dataset.get("StudyInstanceUID", "") or "unknown")
        sop = str(event.request.AffectedSOPInstanceUID)
        if not set(study) <= _UID or not set(sop) <= _UID:
            return 0xA900  # identifier does not match: refuse names that are not UIDs
        with self._lock:
            staging = self._captures.get(study)
            if staging is not None:  # written under the lock: nothing lands after the capture ends
                return 0x0000 if _write(staging, sop, event.encoded_dataset(), create=False) else 0xA700
            until = self._refused.get(study)
            if until is not None and time.monotonic() < until:
                return 0xA700  # a cancelled retrieve's late instance: out of resources, not stored
            self._refused.pop(study, None)
        dest = _write(self.root / study, sop, event.encoded_dataset(), create=True)
        if dest is None:
            return 0xA700
        self.received.append(dest)
        if self.on_instance is not None:
            self.on_instance(dest)
        return 0x0000

    def start(self) -> StoreReceiver:
        ae = AE(ae_title=self.ae_title)
        for context in AllStoragePresentationContexts:  # any syntax: the PACS sends what it stores
            ae.add_supported_context(str(context.abstract_syntax), ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(_sop_class.Verification)  # type: ignore[attr-defined]
        try:
            self._server = ae.start_server((self.host, self.port), block=False,
                                           evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        except OSError as exc:
            raise PacsError(f"Cannot listen for DICOM on port {self.port}: {exc.strerror or exc}.") from None
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> StoreReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _write(folder: Path, sop: str, data: bytes, create: bool) -> Path | None:
    """``folder/<sop>.dcm`` written atomically; None when it cannot be (a vanished staging folder)."""
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{sop}.", suffix=".part", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        dest = folder / f"{sop}.dcm"
        follow_umask(tmp)
        os.replace(tmp, dest)
    except OSError:
        if create:
            log.exception("C-STORE receiver: cannot write an instance")
        return None
    return dest
