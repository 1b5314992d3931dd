"""The PACS work the GUI runs in the background: test a node, search, retrieve studies. Qt-free.

Each function has the ``fn(progress, cancel)`` shape of :class:`app.workers.Job` once its
arguments are bound (``functools.partial``); :func:`retrieve_studies` is a generator whose every
yield is one complete study folder (a partial result the GUI opens in the browser at once).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ml.errors import CxrError
from ml.progress import CancelToken, ProgressCallback


def test_node(node: Any, calling_aet: str, progress: ProgressCallback, cancel: CancelToken) -> list[str]:
    """C-ECHO the DICOM address and/or one QIDO-RS request to the DICOMweb URL; one line each
    ("C-ECHO: OK (12 ms)" or the readable error). Raises the error when every protocol failed."""
    from ml.pacs import dimse, web

    checks = []
    if node.has_dimse:
        checks.append(("C-ECHO", lambda: dimse.echo(node, calling_aet)))
    if node.has_dicomweb:
        checks.append(("QIDO-RS", lambda: web.echo(node)))
    lines, failures = [], []
    for i, (name, check) in enumerate(checks):
        cancel.check()
        progress(i, len(checks), f"{name} to {node.address}")
        started = time.monotonic()
        try:
            check()
        except CxrError as exc:
            failures.append(str(exc))
            lines.append(f"{name}: {exc}")
        else:
            lines.append(f"{name}: OK ({(time.monotonic() - started) * 1000:.0f} ms)")
    if failures and len(failures) == len(checks):  # nothing answered: the test failed
        raise CxrError(failures[0] if len(lines) == 1 else " · ".join(lines))
    return lines


def search(node: Any, query: Any, calling_aet: str, progress: ProgressCallback, cancel: CancelToken) -> list:
    from ml.pacs import find

    progress(0, 0, f"Searching {node.name}")
    matches = find(node, query, calling_aet)
    cancel.check()
    return matches


def retrieve_studies(node: Any, study_uids: list[str], method: str, calling_aet: str, receiver: Any,
                     dest_root: Path | None, progress: ProgressCallback, cancel: CancelToken) -> Iterator[Path]:
    """Each study into ``dest_root`` (the user's cache by default), one after the other; yields
    each complete study folder; a cancel or an error leaves nothing of the unfinished study."""
    from ml.pacs import retrieve

    count = len(study_uids)
    for i, uid in enumerate(study_uids):
        prefix = f"Study {i + 1} of {count}: " if count > 1 else ""

        def study_progress(done: int, total: int, message: str, prefix: str = prefix) -> None:
            progress(done, total, f"{prefix}{message}")

        study_progress(0, 0, "asking the PACS")
        folder = retrieve(node, uid, dest_root, calling_aet, study_progress, cancel, protocol=method,
                          receiver=receiver)
        yield folder
