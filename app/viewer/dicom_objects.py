"""Our DICOM objects and the viewer (Qt-free presenter): measurements saved as a TID 1500 SR and
shown again on their image; our Parametric Map shown back as the heatmap over its image; the view
burned into a Secondary Capture.

Objects that arrive (opened, dropped, retrieved) are read with :mod:`ml.dicom_out.readback` and
kept by the SOP Instance UID of the image they belong to. Whenever that image is shown, its SR
measurements join the image's measurements (once per SR) and its map is the overlay. The view::

    view.show_map(overlay | None)   the Parametric Map overlay of the image shown (None: none)
    view.reload_measurements()      the image's remembered measurements changed: draw them again
    view.status(text)               one line for the status bar
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from app.viewer.measure import Measurement
from app.viewer.state import DisplayState
from ml.errors import CxrError


class DicomObjectsView(Protocol):
    def show_map(self, overlay: object | None) -> None: ...
    def reload_measurements(self) -> None: ...
    def status(self, text: str) -> None: ...


def to_planar(m: Measurement, sop_instance_uid: str = "", frame: int = 0):  # noqa: ANN201 - PlanarMeasurement
    from ml.dicom_out.measurements import PlanarMeasurement

    unit = "HU" if " HU" in m.value else ""
    return PlanarMeasurement(m.kind, [tuple(map(float, p)) for p in m.points], dict(m.numbers), unit,
                             sop_instance_uid, frame)


def from_planar(p) -> Measurement:  # noqa: ANN001 - PlanarMeasurement
    """A viewer measurement at the same points (its value is recomputed on the image it is shown on)."""
    return Measurement(p.kind, [(float(x), float(y)) for x, y in p.points])


class ResultObjects:
    """The SRs and Parametric Maps opened so far, by the SOP Instance UID of their image; shared by
    the presenters of all viewports. ``listeners`` are called after new objects arrive."""

    def __init__(self) -> None:
        self.measurements: dict[str, list[tuple[str, object]]] = {}  # image UID -> [(SR path, PlanarMeasurement)]
        self.maps: dict[str, object] = {}  # image UID -> MapOverlay
        self.seen: set[str] = set()
        self.references: dict[str, str] = {}  # object path -> the SOP Instance UID of its image
        self.listeners: list = []

    def open_paths(self, paths: list[str]) -> tuple[int, list[str]]:
        """Read the SRs and Parametric Maps among ``paths`` (others are ignored): (how many were
        ours, the problems as readable lines)."""
        from ml.dicom_out.readback import read_object

        found, problems = 0, []
        for path in paths:
            if path in self.seen:
                continue
            self.seen.add(path)
            try:
                obj = read_object(path)
            except CxrError as exc:
                problems.append(str(exc))
                continue
            if obj is None:
                continue
            found += 1
            kind, value = obj
            if kind == "measurements":
                for m in value:  # type: ignore[attr-defined]
                    self.measurements.setdefault(m.sop_instance_uid, []).append((path, m))
                self.references[path] = value[0].sop_instance_uid  # type: ignore[index]
            else:
                self.maps[value.sop_instance_uid] = value  # type: ignore[attr-defined]
                self.references[path] = value.sop_instance_uid  # type: ignore[attr-defined]
        if found:
            for listener in list(self.listeners):
                listener()
        return found, problems

    def reference_of(self, path: str) -> str | None:
        """The SOP Instance UID of the image the SR / Parametric Map at ``path`` belongs to."""
        if path not in self.seen:
            self.open_paths([path])
        return self.references.get(path)

    def clear(self) -> None:
        self.measurements.clear()
        self.maps.clear()
        self.seen.clear()
        self.references.clear()


class DicomObjectsPresenter:
    """One viewer's part: its image's SR measurements and map, and saving what it shows."""

    def __init__(self, state: DisplayState, view: DicomObjectsView, objects: ResultObjects | None = None) -> None:
        self.state = state
        self.view = view
        self.objects = objects or ResultObjects()
        self._applied: set[tuple[str, str]] = set()  # (image key, SR path) already shown
        self.shown_map: object | None = None
        state.events.image.connect(lambda _event: self.image_shown())
        self.objects.listeners.append(self.image_shown)

    # ------------------------------------------------------------------ objects coming in
    def open_paths(self, paths: list[str]) -> int:
        """Read the SRs and Parametric Maps among ``paths`` (others are ignored); how many were ours."""
        found, problems = self.objects.open_paths(paths)
        if problems:
            self.view.status(problems[0])
        if found and self.shown_map is None and not self._pending_here():
            self.view.status(f"{found} DICOM result object(s) opened: they appear on their image when it is shown")
        return found

    def reference_of(self, path: str) -> str | None:
        return self.objects.reference_of(path)

    def _pending_here(self) -> bool:
        uid = self._image_uid()
        return bool(uid) and uid in self.objects.measurements

    def _image_uid(self) -> str:
        image = self.state.image
        return str(image.meta.sop_instance_uid or "") if image is not None else ""

    def image_shown(self) -> None:
        """The viewer shows a new image (or none): add its SR measurements, show its map."""
        image, key, uid = self.state.image, self.state.key, self._image_uid()
        if image is None or key is None:
            self._show_map(None)
            return
        fresh: list[Measurement] = []
        for path, m in self.objects.measurements.get(uid, []):
            if (key, path) not in self._applied:
                fresh.append(from_planar(m))
        for path, _m in self.objects.measurements.get(uid, []):
            self._applied.add((key, path))
        if fresh:
            self.state.measurements.add(key, fresh)
            self.view.reload_measurements()
            self.view.status(f"{len(fresh)} measurement(s) from a DICOM SR shown on this image")
        overlay = self.objects.maps.get(uid)
        fits = overlay is not None and tuple(overlay.values.shape) == tuple(image.shape)  # type: ignore[attr-defined]
        self._show_map(overlay if fits else None)

    def _show_map(self, overlay: object | None) -> None:
        if overlay is not self.shown_map:
            self.shown_map = overlay
            self.view.show_map(overlay)

    def forget(self) -> None:
        """Every study closed."""
        self.objects.clear()
        self._applied.clear()
        self._show_map(None)

    # ------------------------------------------------------------------ saving
    def _source(self):  # noqa: ANN202 - pydicom Dataset
        image = self.state.image
        dataset = getattr(image, "dataset", None) if image is not None else None
        if dataset is None or "SOPInstanceUID" not in dataset or "StudyInstanceUID" not in dataset:
            raise CxrError("Only a DICOM image's results can be saved as DICOM (this image has no study to "
                           "add them to).")
        return dataset

    def can_save_measurements(self) -> bool:
        key = self.state.key
        return self.state.image is not None and key is not None and bool(self.state.measurements.remembered(key))

    def save_measurements(self, path: str | Path) -> Path:
        """The current image's measurements as a DICOM SR at ``path`` (".dcm" added)."""
        from ml.dicom_out.measurements import measurement_sr
        from ml.dicom_out.results import write

        source = self._source()
        key = self.state.key
        ours = self.state.measurements.remembered(key) if key is not None else []
        if not ours:
            raise CxrError("There are no measurements on this image to save.")
        uid = str(source.SOPInstanceUID)
        sr = measurement_sr(source, [to_planar(m, uid, self.state.frame) for m in ours])
        target = Path(path)
        written = write(sr, target.parent, target.name[:-4] if target.name.lower().endswith(".dcm") else target.name)
        self.objects.seen.add(str(written))  # re-opening it must not double the measurements shown
        for planar in [to_planar(m, uid) for m in ours]:
            self.objects.measurements.setdefault(uid, []).append((str(written), planar))
        self._applied.add((key, str(written)))  # type: ignore[arg-type]
        return written

    def save_capture(self, path: str | Path, rgb) -> Path:  # noqa: ANN001 - H x W x 3 uint8
        """``rgb`` (the image as displayed, overlays burned in) as a Secondary Capture at ``path``."""
        from ml.dicom_out.capture import secondary_capture
        from ml.dicom_out.results import write

        source = self._source()
        target = Path(path)
        sc = secondary_capture(source, rgb, self.state.frame)
        return write(sc, target.parent, target.name[:-4] if target.name.lower().endswith(".dcm") else target.name)
