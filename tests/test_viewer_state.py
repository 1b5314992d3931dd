"""The viewer's evented display model (app.viewer.state): no display, no Qt, no torch.

Window, presets, inversion, frames, orientation, tool and remembered measurements change through
the model and announce themselves as events, the way a napari layer emits its events.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.viewer.events import EventEmitter
from app.viewer.measure import Measurement
from app.viewer.state import FLIP_H, FLIP_V, IDENTITY, ROTATE_CW, DisplayState, compose
from ml.imaging.image import ImageMeta, Window, XRayImage
from ml.imaging.read import read_image

DICOM = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"


def _dicom(name: str) -> XRayImage:
    path = DICOM / name
    if not path.is_file():
        pytest.fail(f"shared test data missing: {path}")
    return read_image(path)


FILE_WINDOW = Window(2000, 4000)


def synthetic(frames: int = 1, windows=(FILE_WINDOW,)) -> XRayImage:
    stack = np.stack([np.full((40, 60), 200 + 100 * i, np.uint16) for i in range(frames)])
    stack[:, 10:20, 10:20] = 3000
    meta = ImageMeta(rows=40, columns=60, bits_stored=12, bits_allocated=16, modality="DX",
                     n_frames=frames, sop_instance_uid="1.2.3")
    return XRayImage(meta=meta, frames=stack, windows=list(windows))


class Recorder:
    def __init__(self, state: DisplayState) -> None:
        self.events: list[tuple[str, object]] = []
        for name in ("image", "frame", "window", "invert", "orientation", "tool", "measurements"):
            getattr(state.events, name).connect(lambda ev: self.events.append((ev.type, ev.value)))

    def types(self) -> list[str]:
        return [t for t, _ in self.events]


@pytest.fixture
def state() -> DisplayState:
    return DisplayState()


def test_emitter_connects_once_blocks_and_disconnects():
    got = []
    e = EventEmitter(source="src", type="window")
    cb = e.connect(lambda ev: got.append((ev.type, ev.value, ev.source)))
    e.connect(cb)  # connected twice: still called once
    e(1)
    with e.blocker():
        e(2)
    e.disconnect(cb)
    e(3)
    assert got == [("window", 1, "src")]


def test_a_new_image_is_one_event_with_everything_reset(state):
    rec = Recorder(state)
    state.set_image(synthetic(frames=3))
    state.set_frame(2)
    state.toggle_invert()
    state.rotate90()
    state.set_image(synthetic(frames=3))
    assert rec.types() == ["image", "frame", "invert", "orientation", "image"]
    assert (state.frame, state.inverted, state.orientation) == (0, False, IDENTITY)
    assert state.window() == Window(2000, 4000) and state.voi_label == "file"
    assert state.key == "1.2.3"


def test_window_event_fires_on_change_only_with_the_new_window(state):
    state.set_image(synthetic())
    seen: list[Window] = []
    state.events.window.connect(lambda ev: seen.append(ev.value))
    state.set_window(1000, 500)
    state.set_window(1000, 500)  # the same window again: no event
    state.set_window(1000, 0.2)  # a LINEAR window is at least 1 wide
    assert seen == [Window(1000, 500, "LINEAR", "manual"), Window(1000, 1.0, "LINEAR", "manual")]
    assert state.voi_label == ""


def test_presets_auto_window_and_reset_on_a_real_file(state):
    state.set_image(_dicom("RG3_J2KR.dcm"))  # 10 bits, MONOCHROME1, one window in the file
    assert (state.window().center, state.window().width) == (550, 1024)
    assert state.effective_invert()  # MONOCHROME1 is shown inverted without any toggle
    assert state.apply_preset("Lung") and state.window().explanation == "Lung"
    lung = state.window()
    assert state.apply_preset("bone") and state.window() != lung
    assert state.apply_preset(0) and (state.window().center, state.window().width) == (550, 1024)
    assert not state.apply_preset(5) and not state.apply_preset("no such preset")
    state.auto_window()
    assert state.voi_label == "automatic"
    state.rotate90()
    state.toggle_invert()
    assert not state.effective_invert()
    state.reset()
    assert (state.window().center, state.window().width) == (550, 1024)
    assert state.orientation == IDENTITY and not state.inverted


def test_auto_window_is_computed_once_per_frame(state, monkeypatch):
    from ml.imaging import display

    calls = []
    real = display.auto_window
    monkeypatch.setattr(display, "auto_window", lambda values: calls.append(1) or real(values))
    state.set_image(synthetic(frames=2, windows=()))  # no file window: automatic by default
    assert state.voi_label == "automatic" and len(calls) == 1
    state.auto_window()
    state.set_frame(1)
    state.auto_window()
    state.set_frame(0)
    state.auto_window()
    assert len(calls) == 2


def test_window_drags_scale_to_the_data_not_the_container(state):
    state.set_image(_dicom("rsna_cxr_pa.dcm"))
    k8 = state.value_span[1] - state.value_span[0]
    state.set_image(_dicom("RG3_J2KR.dcm"))
    k10 = state.value_span[1] - state.value_span[0]
    assert k10 == pytest.approx(4 * k8, rel=0.01)


def test_frames_are_clamped_or_wrap(state):
    state.set_image(synthetic(frames=3))
    frames = []
    state.events.frame.connect(lambda ev: frames.append(ev.value))
    state.step_frame(-1)  # already first: no event
    state.set_frame(10)
    state.step_frame(1, wrap=True)
    state.set_frame(state.n_frames() - 1)
    assert frames == [2, 0, 2] and state.frame == 2


def test_orientation_composes_like_the_screen():
    assert compose(ROTATE_CW, FLIP_H) == (0, 1, 1, 0)  # as QTransform().rotate(90) * fromScale(-1, 1)
    four = IDENTITY
    for _ in range(4):
        four = compose(four, ROTATE_CW)
    assert four == IDENTITY
    assert compose(compose(ROTATE_CW, ROTATE_CW), compose(FLIP_H, FLIP_V)) == IDENTITY


def test_rotate_flip_and_invert_need_an_image(state):
    rec = Recorder(state)
    state.rotate90()
    state.toggle_invert()
    state.set_window(1, 2)
    assert not state.apply_preset("Lung")
    assert rec.events == [] and state.window() == Window(127.5, 256.0)
    state.set_image(synthetic())
    state.rotate90()
    state.flip_horizontal()
    assert rec.events[-1] == ("orientation", (0, 1, 1, 0))


def test_colour_images_have_no_window(state):
    state.set_image(_dicom("SC_rgb.dcm"))
    rec = Recorder(state)
    state.set_window(100, 50)
    state.auto_window()
    assert state.voi is None and not state.apply_preset("Lung") and rec.events == []
    state.toggle_invert()  # colour images can still be inverted
    assert rec.types() == ["invert"]


def test_tool_is_validated_and_evented(state):
    tools = []
    state.events.tool.connect(lambda ev: tools.append(ev.value))
    state.set_tool("distance")
    state.set_tool("distance")
    with pytest.raises(ValueError, match="unknown tool 'laser'"):
        state.set_tool("laser")
    assert tools == ["distance"] and state.tool == "distance"


def test_measurements_are_remembered_per_image_key(state):
    store = state.measurements
    saved = []
    state.events.measurements.connect(lambda ev: saved.append(ev.value))
    a = Measurement("distance", [(0, 0), (3, 4)], "5.0 px")
    assert store.switch("a") == []
    store.save([a])
    assert store.switch("b") == [] and store.remembered("a") == [a]
    store.save([])
    assert store.switch("a") == [a] and saved == ["a", "b"]
    store.forget()  # closing the study keeps the current image's measurements only
    assert store.keys() == ["a"]
