"""Orientation markers (issue 10 item 5): side labels from PatientOrientation on the image edges,
following rotation and flip; none when the header does not say (a guessed R/L is worse than none)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pydicom
import pytest

from app.viewer.orientation import edge_labels, opposite, patient_orientation
from app.viewer.state import FLIP_H, FLIP_V, IDENTITY, DisplayState, compose
from ml.imaging.image import ImageMeta, Window, XRayImage
from ml.imaging.read import read_image


def image(orientation: tuple[str, ...] = ("L", "F")) -> XRayImage:
    meta = ImageMeta(rows=40, columns=60, bits_stored=12, bits_allocated=16, modality="DX",
                     patient_orientation=orientation)
    return XRayImage(meta=meta, frames=np.full((1, 40, 60), 100, np.uint16), windows=[Window(100, 200)])


def test_opposites():
    assert opposite("L") == "R" and opposite("F") == "H" and opposite("AFR") == "PHL" and opposite("") == ""


def test_patient_orientation_parsing():
    assert patient_orientation(("L", "F")) == ("L", "F")
    assert patient_orientation(("l", "fp")) == ("L", "FP")
    assert patient_orientation(()) is None
    assert patient_orientation(("L",)) is None
    assert patient_orientation(("X", "F")) is None  # not a direction: no markers rather than wrong ones


# What a reader sees on each edge of a PA chest film stored as L\F (patient's right on the viewer's
# left, feet down), after each of the 8 rotations/flips: (left, right, top, bottom).
EXPECTED = {
    "identity": ("R", "L", "H", "F"),
    "cw": ("F", "H", "R", "L"),
    "180": ("L", "R", "F", "H"),
    "ccw": ("H", "F", "L", "R"),
    "flip_h": ("L", "R", "H", "F"),
    "flip_v": ("R", "L", "F", "H"),
    "cw_flip_h": ("H", "F", "R", "L"),  # transpose-like
    "cw_flip_v": ("F", "H", "L", "R"),
}


def _orientation(name: str, state: DisplayState) -> None:
    steps = {
        "identity": [], "cw": ["cw"], "180": ["cw", "cw"], "ccw": ["ccw"], "flip_h": ["h"],
        "flip_v": ["v"], "cw_flip_h": ["cw", "h"], "cw_flip_v": ["cw", "v"],
    }[name]
    for step in steps:
        {"cw": lambda: state.rotate90(True), "ccw": lambda: state.rotate90(False),
         "h": state.flip_horizontal, "v": state.flip_vertical}[step]()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_labels_follow_all_eight_rotations_and_flips(name):
    state = DisplayState()
    state.set_image(image(("L", "F")))
    seen = []
    state.events.orientation.connect(lambda e: seen.append(state.orientation_labels()))
    _orientation(name, state)
    labels = state.orientation_labels()
    assert (labels.left, labels.right, labels.top, labels.bottom) == EXPECTED[name]
    if name != "identity":
        assert seen and seen[-1] == labels  # the labels are current when the event fires


def test_the_eight_orientations_are_distinct():
    assert len(set(EXPECTED.values())) == 8
    assert compose(FLIP_H, FLIP_V) != IDENTITY


def test_compound_and_lateral_orientations():
    labels = edge_labels(("P", "FL"), IDENTITY)  # a left lateral: anterior on the left
    assert (labels.left, labels.right, labels.top, labels.bottom) == ("A", "P", "HR", "FL")


def test_no_markers_without_patient_orientation():
    state = DisplayState()
    state.set_image(image(()))
    assert state.orientation_labels() is None
    img = image(())
    img.meta.view_position = "PA"
    state.set_image(img)
    assert state.orientation_labels() is None  # ViewPosition alone says nothing about R/L on screen


def test_patient_orientation_comes_from_the_file(tmp_path):
    ds = pydicom.dcmread("/work/shared/data/dicom/rsna_cxr_pa.dcm")
    ds.PatientOrientation = ["L", "F"]
    path = tmp_path / "oriented.dcm"
    ds.save_as(path)
    img = read_image(path)
    assert img.meta.patient_orientation == ("L", "F")
    from ml.imaging.header import read_header

    assert read_header(path).patient_orientation == ("L", "F")


def test_markers_are_drawn_on_the_edges(qtbot):
    from PySide6 import QtGui

    from app.viewer import ImageViewer

    v = ImageViewer()
    qtbot.addWidget(v)
    v.resize(500, 400)
    v.show()
    qtbot.waitExposed(v)
    img = image(("L", "F"))
    v.set_image(dataclasses.replace(img, frames=np.zeros((1, 40, 60), np.uint16)))  # black image
    assert v.corner_text()["left"] == ["R"] and v.corner_text()["right"] == ["L"]
    shot = v.grab_view(with_overlays=True).convertToFormat(QtGui.QImage.Format.Format_Grayscale8)
    a = np.frombuffer(shot.constBits(), np.uint8).reshape(shot.height(), shot.bytesPerLine())[:, : shot.width()]
    h, w = a.shape
    middle = slice(h // 2 - 15, h // 2 + 15)
    assert a[middle, :30].max() > 200 and a[middle, -30:].max() > 200  # light text at both side edges
    assert a[:30, w // 2 - 15 : w // 2 + 15].max() > 200  # and at the top edge
    v.rotate90()
    assert v.corner_text()["left"] == ["F"] and v.corner_text()["top"] == ["R"]
