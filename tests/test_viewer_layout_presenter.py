"""The viewport layout presenter without Qt: grid, per-viewport models, sync, hanging protocol."""

from __future__ import annotations

import numpy as np

from app.viewer.hanging import chest_hanging
from app.viewer.layout_presenter import CameraValue, LayoutPresenter
from app.viewer.measure import Measurement
from app.viewer.state import DisplayState
from ml.imaging.image import ImageMeta, Window, XRayImage
from tests.test_viewer_hanging import cxr


class FakeGrid:
    def __init__(self):
        self.grid, self.loaded, self.captions = None, {}, {}

    def show_grid(self, rows, cols):
        self.grid = (rows, cols)

    def load(self, index, entry):
        self.loaded[index] = entry.path

    def show_caption(self, index, text):
        self.captions[index] = text


def image(frames: int = 3, uid: str = "1.2.3") -> XRayImage:
    meta = ImageMeta(rows=20, columns=30, bits_stored=12, bits_allocated=16, sop_instance_uid=uid)
    return XRayImage(meta=meta, frames=np.zeros((frames, 20, 30), np.uint16), windows=[Window(100, 200)])


def two_by_one(sync=()):
    grid = FakeGrid()
    primary = DisplayState()
    p = LayoutPresenter(grid, primary)
    p.set_layout_name("1x2")
    a, b = p.viewport(0).state, p.viewport(1).state
    a.set_image(image(uid="a"))
    b.set_image(image(uid="b"))
    for kind in sync:
        p.set_sync(kind, True)
    return grid, p, a, b


def test_each_viewport_has_its_own_model():
    grid, p, a, b = two_by_one()
    assert grid.grid == (1, 2) and a is not b and p.viewport(0).state is a
    a.set_window(500, 900)
    a.rotate90()
    a.set_frame(2)
    assert b.window().center == 100 and b.orientation == (1, 0, 0, 1) and b.frame == 0  # no sync
    a.measurements.switch("a")
    b.measurements.switch("b")
    a.measurements.save([Measurement("distance", [(0, 0), (5, 0)])])
    assert b.measurements.remembered("b") == [] and len(a.measurements.remembered("a")) == 1


def test_sync_window_frame_and_zoom_through_the_models():
    grid, p, a, b = two_by_one(sync=("window", "frame", "zoom"))
    a.set_window(500, 900)
    assert (b.window().center, b.window().width) == (500, 900)
    b.set_frame(2)
    assert a.frame == 2
    p.viewport(1).camera.set(CameraValue(2.0, 0.25, 0.5))
    assert p.viewport(0).camera.value == CameraValue(2.0, 0.25, 0.5)
    p.set_sync("window", False)
    a.set_window(10, 20)
    assert b.window().center == 500


def test_hanging_places_current_and_prior_with_captions():
    grid = FakeGrid()
    p = LayoutPresenter(grid, DisplayState())
    current = cxr("now.dcm", "20240301")
    h = chest_hanging(current, [current, cxr("then.dcm", "20230110")])
    p.hang(h)
    assert grid.grid == (1, 2)
    assert grid.loaded == {1: "then.dcm"}  # the current image is already in the first viewport
    assert grid.captions == {0: "Current 2024-03-01", 1: "Prior 2023-01-10"}
    p.single()
    assert grid.grid == (1, 1) and grid.captions[0] == ""
