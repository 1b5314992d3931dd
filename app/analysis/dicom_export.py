"""The analysis panel's DICOM results: save the shown image's result as a TID 1500 SR (and, when a
heatmap of this image is shown, a Parametric Map) into a folder, or send them to a PACS node.

Qt-free (the rules live here; :mod:`app.analysis.dicom_export_view` only forwards what the user
does). The objects are built by :mod:`ml.dicom_out.results` and written atomically with its
``write``; sending uses :func:`ml.pacs.send` (C-STORE, or STOW-RS for a DICOMweb-only node). The
work runs as a background job through the panel's :class:`app.analysis.state.JobRunner`.
Not for diagnostic use.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.analysis.state import JobHandle, JobRunner
from ml.errors import CxrError

NOT_DICOM = "DICOM results need a DICOM source image"
NO_RESULT = "Run a model on an image first: there are no results to export."
NO_NODES = "No PACS node is set up: add one in PACS ▸ Nodes…"


@dataclass(frozen=True)
class ExportInputs:
    """A snapshot of what is exported: taken on the GUI thread when the user asks."""

    source: Path  # the DICOM file the result was computed on
    prediction: Any  # ml.inference.predictor.Prediction
    heatmap: Any  # ml.explain.Heatmap of this image (complete), or None
    model_name: str
    model_version: str
    model_path: Path | None


def is_dicom(path: str | Path) -> bool:
    from ml.imaging.sniff import sniff_kind

    try:
        return Path(path).is_file() and sniff_kind(path) == "dicom"
    except (OSError, CxrError):
        return False


def unavailable(presenter: Any) -> str:
    """Why the shown image's result cannot be exported as DICOM now ("" when it can)."""
    current = presenter.images.current()
    if current is not None and not is_dicom(current[0].meta.path):
        return f"{NOT_DICOM}."
    try:
        presenter.report_inputs()  # the stale-result guard: the result must be of the image shown
    except CxrError as exc:
        return str(exc)
    return ""


def snapshot(presenter: Any) -> ExportInputs:
    """What to export for the image shown; a CxrError with the reason when nothing can be."""
    why = unavailable(presenter)
    if why:
        raise CxrError(why)
    inputs = presenter.report_inputs()
    p = inputs.prediction
    heatmap = inputs.heatmap if inputs.heatmap is not None and getattr(inputs.heatmap, "complete", True) else None
    info = next((m for m in presenter.state.models if m.name == p.model_name), None)
    manifest = info.manifest if info is not None else None
    return ExportInputs(Path(p.path), p, heatmap, str(getattr(manifest, "name", "") or p.model_name),
                        str(getattr(manifest, "version", "") or ""), info.path if info is not None else None)


def build(inputs: ExportInputs) -> list[tuple[Any, str]]:
    """The DICOM objects (dataset, file stem): the SR, then the Parametric Map when there is a heatmap."""
    from ml.dicom_out.results import Algorithm, measurement_report, parametric_map, read_source
    from ml.fileio import sha256_file

    source = read_source(inputs.source)
    sha = sha256_file(inputs.model_path) if inputs.model_path is not None and inputs.model_path.is_file() else ""
    algorithm = Algorithm(inputs.model_name, inputs.model_version, sha)
    frame = int(inputs.prediction.frame)
    stem = f"{source.SOPInstanceUID}_f{frame + 1}"
    objects: list[tuple[Any, str]] = [(measurement_report(source, inputs.prediction, algorithm), f"{stem}.sr")]
    if inputs.heatmap is not None:
        objects.append((parametric_map(source, inputs.heatmap, algorithm, frame), f"{stem}.pm"))
    return objects


def save_job(inputs: ExportInputs, folder: Path) -> Callable[..., list[Path]]:
    def run(progress: Any, cancel: Any) -> list[Path]:
        from ml.dicom_out.results import write

        _report(progress, 0, 2, "Building the DICOM results…")
        objects = build(inputs)
        written = []
        for i, (ds, stem) in enumerate(objects):
            cancel.check()
            written.append(write(ds, folder, stem))
            _report(progress, i + 1, len(objects), f"Saved {written[-1].name}")
        return written

    return run


def send_job(inputs: ExportInputs, node: Any, calling_aet: str) -> Callable[..., int]:
    def run(progress: Any, cancel: Any) -> int:
        from ml.dicom_out.results import write
        from ml.pacs import send

        _report(progress, 0, 0, "Building the DICOM results…")
        objects = build(inputs)
        with tempfile.TemporaryDirectory(prefix="cxr-dicom-send-") as tmp:
            paths = [write(ds, tmp, stem) for ds, stem in objects]
            cancel.check()
            _report(progress, 0, len(paths), f"Sending to {node.address}…")
            return send(node, paths, calling_aet, progress=progress, cancel=cancel)

    return run


def _report(progress: Any, done: int, total: int, message: str) -> None:
    if progress is not None:  # the job's reporter: progress(done, total, message)
        progress(done, total, message)


class DicomExport:
    """Save or send the shown image's DICOM results; one such job at a time."""

    def __init__(self, presenter: Any, runner: JobRunner, status: Callable[[str], None],
                 busy: Callable[[bool], None] | None = None,
                 progress: Callable[[int, int, str], None] | None = None) -> None:
        self.presenter = presenter  # app.analysis.presenter.AnalysisPresenter (report_inputs, images, state)
        self.runner = runner
        self.status = status  # the panel's one-line status
        self.busy_changed = busy or (lambda _b: None)
        self.progress = progress
        self.job: JobHandle | None = None
        self.last: Any = None  # the last job's result (paths written, or the count sent)

    @property
    def busy(self) -> bool:
        return self.job is not None

    def unavailable(self) -> str:
        return "A DICOM export is running." if self.busy else unavailable(self.presenter)

    def nodes(self) -> dict[str, Any]:
        from ml.pacs.nodes import load_nodes

        return load_nodes()

    def save(self, folder: str | Path) -> bool:
        """Save into ``folder`` in the background; False (and the reason in the status) when refused."""
        inputs = self._inputs()
        if inputs is None:
            return False
        folder = Path(folder)
        n = 2 if inputs.heatmap is not None else 1
        self._start(save_job(inputs, folder), "saving DICOM results",
                    lambda written: f"Saved {len(written)} DICOM result object(s) "
                                    f"({'SR + Parametric Map' if n == 2 else 'SR'}) in {folder}.")  # fmt: skip
        return True

    def send(self, node_name: str, calling_aet: str = "") -> bool:
        """Send to the node named ``node_name`` (from the node file) in the background."""
        from ml.pacs.nodes import DEFAULT_AET

        inputs = self._inputs()
        if inputs is None:
            return False
        try:
            nodes = self.nodes()
        except CxrError as exc:
            self.status(str(exc))
            return False
        node = nodes.get(node_name)
        if node is None:
            self.status(NO_NODES if not nodes else f"No PACS node named '{node_name}'.")
            return False
        self._start(send_job(inputs, node, calling_aet or DEFAULT_AET), f"sending DICOM results to {node.name}",
                    lambda count: f"Sent {count} DICOM result object(s) to {node.name} ({node.address}).")
        return True

    def _inputs(self) -> ExportInputs | None:
        if self.busy:
            self.status("A DICOM export is running.")
            return None
        try:
            return snapshot(self.presenter)
        except CxrError as exc:
            self.status(str(exc))
            return None

    def _start(self, fn: Callable[..., Any], description: str, done_text: Callable[[Any], str]) -> None:
        def finished(result: Any) -> None:
            self.last = result
            self.status(done_text(result))

        def error(message: str) -> None:
            self.status(f"DICOM results not {'sent' if 'sending' in description else 'saved'}: {message}")

        def ended() -> None:
            self.job = None
            self.busy_changed(False)

        self.status(description[0].upper() + description[1:] + "…")
        self.busy_changed(True)
        self.job = self.runner.start(fn, description, finished=finished, error=error, progress=self.progress,
                                     cancelled=lambda: self.status("DICOM export cancelled."), done=ended)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()


__all__ = ["NOT_DICOM", "NO_NODES", "DicomExport", "ExportInputs", "build", "is_dicom", "snapshot", "unavailable"]
