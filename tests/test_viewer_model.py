"""The image view renders its evented display model: change the model, the pixels follow.

Also: the viewer's keyboard actions act on the model, and app.viewer / app.browser / app.tags
have no import cycles (tools and actions no longer import the view).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtGui

from app.viewer import DisplayState, ImageViewer
from ml.imaging import display
from ml.imaging.read import read_image
from tests.test_viewer import displayed_region

REPO = Path(__file__).resolve().parents[1]
DICOM = REPO.parent / "shared" / "data" / "dicom"


@pytest.fixture(scope="module")
def rsna():
    path = DICOM / "rsna_cxr_pa.dcm"
    if not path.is_file():
        pytest.fail(f"shared test data missing: {path}")
    return read_image(path)


@pytest.fixture
def viewer(qtbot) -> ImageViewer:
    v = ImageViewer()
    qtbot.addWidget(v)
    v.resize(1200, 1100)
    v.show()
    qtbot.waitExposed(v)
    return v


def test_the_view_renders_what_the_model_says(viewer, rsna):
    viewer.set_image(rsna)
    viewer.zoom_1to1()
    windows: list[tuple[float, float]] = []
    viewer.windowChanged.connect(lambda c, w: windows.append((c, w)))
    state = viewer.state
    assert state.apply_preset("Lung")  # on the model, not the widget
    got, exp = displayed_region(viewer, rsna)
    assert np.array_equal(got, exp)
    assert np.array_equal(exp, display.render(rsna, 0, state.voi, False))
    assert windows == [(state.window().center, state.window().width)]
    assert any("(Lung)" in line for line in viewer.corner_text()["bl"])
    state.toggle_invert()
    got, exp = displayed_region(viewer, rsna)
    assert viewer.is_inverted() and np.array_equal(got, exp)
    assert "Inverted" in viewer.corner_text()["bl"]


def test_orientation_from_the_model_matches_qt_composition(viewer, rsna):
    viewer.set_image(rsna)
    qt = QtGui.QTransform()
    for op, q in (
        (viewer.state.rotate90, QtGui.QTransform().rotate(90)),
        (viewer.state.flip_horizontal, QtGui.QTransform.fromScale(-1, 1)),
        (lambda: viewer.state.rotate90(False), QtGui.QTransform().rotate(-90)),
        (viewer.state.flip_vertical, QtGui.QTransform.fromScale(1, -1)),
        (viewer.state.rotate90, QtGui.QTransform().rotate(90)),
    ):
        op()
        qt = qt * q
        o = viewer.orientation()
        assert (o.m11(), o.m12(), o.m21(), o.m22()) == pytest.approx((qt.m11(), qt.m12(), qt.m21(), qt.m22()))
        corner = viewer.image_group().mapToParent(rsna.shape[1], rsna.shape[0])
        centre = viewer.image_group().mapToParent(rsna.shape[1] / 2, rsna.shape[0] / 2)
        assert (centre.x(), centre.y()) == pytest.approx((0, 0))  # rotation/flip about the centre
        expected = qt.map(rsna.shape[1] / 2, rsna.shape[0] / 2)
        assert (corner.x(), corner.y()) == pytest.approx(expected)


def test_actions_act_on_the_model(viewer, rsna):
    viewer.set_image(rsna)
    by_name = {a.objectName(): a for a in viewer.actions()}
    by_name["viewer_preset_bone"].trigger()
    assert viewer.state.voi_label == "Bone"
    by_name["viewer_rotate_cw"].trigger()
    assert viewer.state.orientation == (0, 1, -1, 0)
    by_name["viewer_tool_distance"].trigger()
    assert viewer.state.tool == "distance" == viewer.tool()
    viewer.state.set_tool("rect")  # the model changed elsewhere: the menu check follows
    assert by_name["viewer_tool_rect"].isChecked() and not by_name["viewer_tool_distance"].isChecked()
    by_name["viewer_reset"].trigger()
    assert viewer.state.orientation == (1, 0, 0, 1)
    assert (viewer.state.voi, viewer.state.voi_label) == viewer.state.default_voi() != (None, "Bone")


def test_a_view_can_be_given_its_model(qtbot, rsna):
    state = DisplayState()
    v = ImageViewer(state=state)
    qtbot.addWidget(v)
    state.set_image(rsna)
    assert v.image() is rsna and v.corner_text()["br"][-1] == "Not for diagnostic use"
    state.set_image(None)
    assert v.image() is None and v.corner_text() == {}


def _imports(path: Path, package: str) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):  # TYPE_CHECKING imports count too
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m.startswith(package + ".")}


@pytest.mark.parametrize("package", ["app.viewer", "app.browser", "app.tags"])
def test_no_import_cycles_inside_the_panel_packages(package):
    folder = REPO / package.replace(".", "/")
    modules = {f"{package}.{p.stem}": p for p in folder.glob("*.py") if p.stem != "__init__"}
    graph = {m: {d for d in _imports(p, package) if d in modules and d != m} for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1:
                raise AssertionError(" -> ".join([*stack[stack.index(d):], d]) if d in stack else d)
            if d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
