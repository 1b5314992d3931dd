"""An optional C-STORE SCP (pynetdicom): the app's own storage receiver, the C-MOVE destination.

Off unless started. Each incoming instance is written atomically (temporary name, then rename) to
``<root>/<StudyInstanceUID>/<SOPInstanceUID>.dcm`` (root: ``<user cache>/pacs`` by default) and
reported through ``on_instance(path)``. Not for diagnostic use.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
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

    def _on_store(self, event) -> int:  # noqa: ANN001 - pynetdicom Event
        study = str(event.dataset.get("StudyInstanceUID", "") or "unknown")
        sop = str(event.request.AffectedSOPInstanceUID)
        if not set(study) <= _UID or not set(sop) <= _UID:
            return 0xA900  # identifier does not match: refuse names that are not UIDs
        folder = self.root / study
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{sop}.", suffix=".part", dir=folder)
            with os.fdopen(fd, "wb") as fh:
                fh.write(event.encoded_dataset())
            dest = folder / f"{sop}.dcm"
            follow_umask(tmp)
            os.replace(tmp, dest)
        except OSError:
            log.exception("C-STORE receiver: cannot write an instance")
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
