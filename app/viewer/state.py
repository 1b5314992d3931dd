"""The image view's display state as a small evented model (Qt-free, no pyqtgraph).

What the radiologist changes while reading lives here, and every change is announced the way a
napari layer announces ``events.contrast_limits``::

    state = DisplayState()
    state.events.window.connect(lambda event: print(event.value))   # the new Window
    state.set_image(image)          # events.image
    state.apply_preset("Lung")      # events.window

Events (each fires only when its value changes; ``event.value`` is the new value):

``image``         a new image (or None) with its frame, window, inversion and orientation reset
``frame``         the frame index
``window``        the VOI in use (``state.voi``, ``state.voi_label``); value: ``state.window()``
``invert``        the user's inversion toggle
``orientation``   rotation/flip as a 2x2 integer matrix ``(m11, m12, m21, m22)``, Qt's layout:
                  x' = m11 x + m21 y, y' = m12 x + m22 y (screen axes, y down)
``tool``          the mouse tool's name (one of :data:`TOOLS`)
``measurements``  the measurements of the current image were saved (value: the image key)

The image view (:class:`app.viewer.view.ImageViewer`) subscribes and renders; mouse tools and
keyboard actions change this model, never the widget. Zoom and pan stay in the view (they are
the ViewBox's range).
"""

from __future__ import annotations

from app.viewer.events import EventEmitter
from app.viewer.measure import Measurement
from app.viewer.orientation import EdgeLabels, edge_labels
from ml.imaging import display
from ml.imaging.image import VoiLut, Window, XRayImage

TOOLS = ("wl", "pan", "zoom", "distance", "angle", "rect", "ellipse")
MEASURE_TOOLS = ("distance", "angle", "rect", "ellipse")

Orientation = tuple[int, int, int, int]
IDENTITY: Orientation = (1, 0, 0, 1)
ROTATE_CW: Orientation = (0, 1, -1, 0)  # QTransform().rotate(90)
ROTATE_CCW: Orientation = (0, -1, 1, 0)
FLIP_H: Orientation = (-1, 0, 0, 1)
FLIP_V: Orientation = (1, 0, 0, -1)


def compose(first: Orientation, then: Orientation) -> Orientation:
    """``first`` followed by ``then`` (Qt's ``first * then``: row vectors, so a plain matrix product)."""
    a11, a12, a21, a22 = first
    b11, b12, b21, b22 = then
    return (a11 * b11 + a12 * b21, a11 * b12 + a12 * b22, a21 * b11 + a22 * b21, a21 * b12 + a22 * b22)


class DisplayEvents:
    def __init__(self, source: object) -> None:
        self.image = EventEmitter(source, "image")
        self.frame = EventEmitter(source, "frame")
        self.window = EventEmitter(source, "window")
        self.invert = EventEmitter(source, "invert")
        self.orientation = EventEmitter(source, "orientation")
        self.tool = EventEmitter(source, "tool")
        self.measurements = EventEmitter(source, "measurements")


class MeasurementStore:
    """The measurements remembered per image key while a study is open (plain data)."""

    def __init__(self, events: DisplayEvents) -> None:
        self._events = events
        self._store: dict[str, list[Measurement]] = {}
        self.key: str | None = None

    def switch(self, key: str | None) -> list[Measurement]:
        """Make ``key`` current; returns the measurements remembered for it (a copy of the list)."""
        self.key = key
        return list(self._store.get(key, [])) if key is not None else []

    def save(self, measurements: list[Measurement]) -> None:
        if self.key is not None:
            self._store[self.key] = list(measurements)
            self._events.measurements(self.key)

    def add(self, key: str, measurements: list[Measurement]) -> None:
        """Remember more measurements for ``key`` (e.g. read back from a DICOM SR)."""
        self._store.setdefault(key, []).extend(measurements)
        self._events.measurements(key)

    def remembered(self, key: str) -> list[Measurement]:
        return list(self._store.get(key, []))

    def keys(self) -> list[str]:
        return list(self._store)

    def forget(self, keys: list[str] | None = None) -> None:
        """Drop remembered measurements of other images (all of them when ``keys`` is None)."""
        for k in list(self._store) if keys is None else keys:
            if k != self.key:
                self._store.pop(k, None)


class DisplayState:
    """Image, frame, VOI (window or VOI LUT), inversion, orientation, tool and measurements."""

    def __init__(self) -> None:
        self.events = DisplayEvents(self)
        self.measurements = MeasurementStore(self.events)
        self._image: XRayImage | None = None
        self._key: str | None = None
        self._frame = 0
        self._voi: display.Voi | None = None
        self._voi_label = ""
        self._invert = False
        self._orientation: Orientation = IDENTITY
        self._tool = "wl"
        self._span: tuple[float, float] = (0.0, 255.0)
        self._auto_cache: dict[int, Window] = {}

    # ------------------------------------------------------------------ image and frame
    @property
    def image(self) -> XRayImage | None:
        return self._image

    @property
    def key(self) -> str | None:
        """The key measurements of this image are kept under (SOP Instance UID, path, or given)."""
        return self._key

    def set_image(self, image: XRayImage | None, key: str | None = None) -> None:
        """Show ``image``: first frame, its default window, no inversion, no rotation/flip."""
        self._image = image
        self._key = (key or image.meta.sop_instance_uid or image.meta.path or None) if image is not None else None
        self._frame = 0
        self._auto_cache = {}
        self._invert = False
        self._orientation = IDENTITY
        if image is None:
            self._voi, self._voi_label = None, ""
        else:
            self._span = self._value_span(image)
            self._voi, self._voi_label = self.default_voi()
        self.events.image(image)

    def n_frames(self) -> int:
        return self._image.n_frames if self._image is not None else 0

    @property
    def frame(self) -> int:
        return self._frame

    def set_frame(self, index: int) -> None:
        if self._image is None:
            return
        index = max(0, min(int(index), self._image.n_frames - 1))
        if index != self._frame:
            default, label = self.default_voi() if self._image.frame_windows else (None, "")
            was_default = isinstance(default, Window) and self._voi == default and self._voi_label == label
            self._frame = index
            if was_default:  # an enhanced image's per-frame window follows the frame until changed
                self.set_voi(*self.default_voi())
            self.events.frame(index)

    def step_frame(self, step: int, wrap: bool = False) -> None:
        if self._image is None:
            return
        target = self._frame + step
        self.set_frame(target % self._image.n_frames if wrap else target)

    # ------------------------------------------------------------------ window / level
    @property
    def voi(self) -> display.Voi | None:
        """The VOI in use: a Window or a VoiLut from the file (None: colour image or nothing)."""
        return self._voi

    @property
    def voi_label(self) -> str:
        """How the window was chosen: "manual", "automatic", a preset or the file's explanation."""
        return self._voi_label

    @property
    def value_span(self) -> tuple[float, float]:
        """The range window/level drags are scaled to (modality units)."""
        return self._span

    def window(self) -> Window:
        """The current VOI as a window (a VOI LUT is described by its input range)."""
        voi = self._voi
        if isinstance(voi, Window):
            return voi
        if isinstance(voi, VoiLut):
            n = voi.data.size
            return Window(voi.first_mapped + n / 2.0, float(n), "LINEAR", voi.explanation or "VOI LUT")
        return Window(127.5, 256.0)

    def set_voi(self, voi: display.Voi | None, label: str) -> None:
        old = self._voi
        # a VoiLut holds an array: compare it by identity, a Window by value
        same = voi is old or (isinstance(voi, Window) and isinstance(old, Window) and voi == old)
        if not same or label != self._voi_label:
            self._voi, self._voi_label = voi, label
            self.events.window(self.window())

    def set_window(self, center: float, width: float) -> None:
        if self._image is None or self._image.is_color:
            return
        old = self._voi
        function = (
            old.function
            if isinstance(old, Window) and old.function in ("LINEAR_EXACT", "SIGMOID")
            else "LINEAR"
        )
        min_width = 1.0 if function == "LINEAR" else 1e-6 * max(self._span[1] - self._span[0], 1e-6)
        self.set_voi(Window(float(center), max(float(width), min_width), function, "manual"), "")

    def apply_preset(self, index_or_name: int | str) -> bool:
        """A file preset by 0-based index (keys 1-9), or by name: Lung, Mediastinum, Bone, auto,
        default, or a file window's explanation. Returns False when there is no such preset."""
        img = self._image
        if img is None or img.is_color:
            return False
        file_presets = display.presets(img, self._frame)
        if isinstance(index_or_name, int):
            if not 0 <= index_or_name < len(file_presets):
                return False
            voi = file_presets[index_or_name]
            self.set_voi(voi, voi.explanation or f"file preset {index_or_name + 1}")
            return True
        name = str(index_or_name).strip().lower()
        for preset in display.CHEST_PRESETS:
            if name in (preset.name.lower(), preset.key.lower()):
                self.set_voi(display.chest_preset_window(img, preset, self._frame), preset.name)
                return True
        if name in ("auto", "automatic"):
            self.auto_window()
            return True
        if name == "default":
            self.set_voi(*self.default_voi())
            return True
        for i, voi in enumerate(file_presets):
            if voi.explanation and voi.explanation.strip().lower() == name:
                return self.apply_preset(i)
        return False

    def auto_window(self) -> None:
        if self._image is None or self._image.is_color:
            return
        self.set_voi(self._auto_window(), "automatic")

    def default_voi(self) -> tuple[display.Voi | None, str]:
        """The file's first window, else its first VOI LUT, else an automatic window."""
        img = self._image
        if img is None or img.is_color:
            return None, ""
        windows = img.windows_for(self._frame)  # an enhanced image's frame has its own
        if windows:
            return windows[0], windows[0].explanation or "file"
        if img.voi_luts:
            return img.voi_luts[0], img.voi_luts[0].explanation or "VOI LUT"
        return self._auto_window(), "automatic"

    def _auto_window(self) -> Window:
        assert self._image is not None
        if self._frame not in self._auto_cache:
            self._auto_cache[self._frame] = display.auto_window(display.modality_values(self._image, self._frame))
        return self._auto_cache[self._frame]

    @staticmethod
    def _value_span(image: XRayImage) -> tuple[float, float]:
        lo, hi = display.value_range(image)
        frame = image.frames[0]
        if not image.is_color and frame.size and frame.dtype.kind in "iu" and image.modality_lut is None:
            # 16-bit containers holding 12-bit data: scale drags to the data, not the container
            dlo, dhi = float(frame.min()), float(frame.max())
            s, b = image.rescale_slope, image.rescale_intercept
            dlo, dhi = sorted((dlo * s + b, dhi * s + b))
            if (dhi - dlo) * 4 < (hi - lo):
                return dlo, max(dhi, dlo + 1.0)
        return lo, hi

    # ------------------------------------------------------------------ inversion
    @property
    def inverted(self) -> bool:
        """True when the user asked for the inverse of the standard display."""
        return self._invert

    def set_inverted(self, inverted: bool) -> None:
        if self._image is not None and bool(inverted) != self._invert:
            self._invert = bool(inverted)
            self.events.invert(self._invert)

    def toggle_invert(self) -> None:
        self.set_inverted(not self._invert)

    def effective_invert(self) -> bool:
        """Whether grey levels are shown inverted: MONOCHROME1 (or an INVERSE shape) xor the toggle."""
        return self._image is not None and (self._image.meta.inverted != self._invert)

    # ------------------------------------------------------------------ orientation
    @property
    def orientation(self) -> Orientation:
        return self._orientation

    def set_orientation(self, orientation: Orientation) -> None:
        if self._image is not None and tuple(orientation) != self._orientation:
            self._orientation = tuple(orientation)  # type: ignore[assignment]
            self.events.orientation(self._orientation)

    def orientation_labels(self) -> EdgeLabels | None:
        """The patient direction each screen edge faces (from Patient Orientation), or None."""
        if self._image is None:
            return None
        return edge_labels(self._image.meta.patient_orientation, self._orientation)

    def rotate90(self, clockwise: bool = True) -> None:
        self.set_orientation(compose(self._orientation, ROTATE_CW if clockwise else ROTATE_CCW))

    def flip_horizontal(self) -> None:
        self.set_orientation(compose(self._orientation, FLIP_H))

    def flip_vertical(self) -> None:
        self.set_orientation(compose(self._orientation, FLIP_V))

    # ------------------------------------------------------------------ reset and tool
    def reset(self) -> None:
        """Default window, no inversion, no rotation/flip."""
        if self._image is None:
            return
        self.set_inverted(False)
        self.set_orientation(IDENTITY)
        self.set_voi(*self.default_voi())

    @property
    def tool(self) -> str:
        return self._tool

    def set_tool(self, name: str) -> None:
        if name not in TOOLS:
            raise ValueError(f"unknown tool {name!r}; expected one of {', '.join(TOOLS)}")
        if name != self._tool:
            self._tool = name
            self.events.tool(name)
