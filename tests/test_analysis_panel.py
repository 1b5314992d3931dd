"""The analysis panel end to end, with a real (tiny, random-weight) model file in the model library.

The model is a ``cxr_resnet_small`` with two labels saved with ``ml.models.bundle.save_model`` into
the library (``$CXR_STUDIO_HOME`` is a temporary folder, see conftest.py). The radiograph is the real
RSNA file from ../shared/data, read in place.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from app.analysis import install
from app.analysis.panel import EMPTY, READY, AnalysisPanel
from app.main_window import MainWindow
from app.settings import Settings
from app.workers import running_jobs

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RSNA = DATA / "dicom" / "rsna_cxr_pa.dcm"
WAIT_MS = 120_000  # the test machine has 2 shared cores
LABELS = ["Normal", "Pneumonia"]


@pytest.fixture(scope="module")
def rsna() -> Path:
    if not RSNA.is_file():
        pytest.fail(f"shared test data missing at {RSNA}")
    return RSNA


@pytest.fixture(autouse=True)
def _no_shipped_default_model(monkeypatch) -> None:
    """These tests install their own models; the default model shipped in resources/models would be
    installed and chosen first (test_the_shipped_default_model_is_installed_and_chosen covers that)."""
    from ml.models import library

    monkeypatch.setattr(library, "bundled_default_model", lambda: None)


def install_tiny_model(name: str = "tiny-cxr", seed: int = 2, no_evidence: bool = False) -> Path:
    """A random cxr_resnet_small. Seed 2 gives a Grad-CAM with positive evidence on the RSNA image.
    ``no_evidence``: every class weight of the head is negative, so no class has positive evidence
    anywhere (its features are post-ReLU, >= 0): the Grad-CAM is all zero by construction."""
    import torch

    from ml.models import bundle, library
    from ml.models.importing import make_manifest
    from ml.models.manifest import Provenance
    from ml.models.registry import build_model

    torch.manual_seed(seed)
    manifest = make_manifest(
        name=name,
        architecture="cxr_resnet_small",
        labels=LABELS,
        task="multiclass",
        channels=1,
        input_size=64,
        provenance=Provenance(
            training_data="random weights (test)", metrics={"accuracy": 0.5}, date="2025-01-01"
        ),
        description="A test model with random weights.",
    )
    model = build_model("cxr_resnet_small", 2, 1)
    if no_evidence:
        with torch.no_grad():
            model.fc.weight.copy_(-model.fc.weight.abs() - 1e-3)
    return bundle.save_model(library.models_dir() / library.file_name_for(name), model, manifest)


def make_panel(qtbot, tmp_path: Path) -> tuple[MainWindow, AnalysisPanel]:
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    window = MainWindow(Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(window)
    panel = getattr(window, "analysis_panel", None) or install(window)
    window.show()
    return window, panel


def close(window: MainWindow, qtbot) -> None:
    window.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)


@pytest.fixture
def ready(qtbot, tmp_path: Path, rsna: Path):
    """Main window with the tiny model installed and loaded, and the RSNA radiograph shown."""
    install_tiny_model()
    window, panel = make_panel(qtbot, tmp_path)
    qtbot.waitUntil(lambda: panel.loaded is not None, timeout=WAIT_MS)
    window.open_paths([str(rsna)])
    qtbot.waitUntil(lambda: window.viewer.image() is not None, timeout=WAIT_MS)
    yield window, panel
    close(window, qtbot)


def run_image(qtbot, panel: AnalysisPanel, explain: bool = True) -> None:
    panel.auto_explain.setChecked(explain)
    panel.run_current()
    qtbot.waitUntil(lambda: panel.prediction is not None and not panel.busy, timeout=WAIT_MS)
    if explain:
        qtbot.waitUntil(lambda: panel.heatmap is not None and panel.heatmap.complete and not panel.busy,
                        timeout=WAIT_MS)  # fmt: skip


# ---------------------------------------------------------------------------- start-up and empty state


def test_torch_not_loaded_at_start_and_no_model_offer(qtbot, tmp_path: Path) -> None:
    # a fresh interpreter: other tests in this process have imported torch already
    code = textwrap.dedent(
        f"""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from app.main_window import MainWindow
        from app.settings import Settings
        from app.analysis import install
        w = MainWindow(Settings({str(tmp_path / "s.ini")!r}))
        if getattr(w, "analysis_panel", None) is None:
            install(w)
        print("TORCH_LOADED", "torch" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "TORCH_LOADED False" in out.stdout, out.stdout + out.stderr

    window, panel = make_panel(qtbot, tmp_path)
    try:
        qtbot.waitUntil(lambda: panel.stack.currentIndex() == EMPTY, timeout=WAIT_MS)
        assert panel.empty_label.isVisible()
        assert "No model is installed" in panel.empty_label.text()
        assert panel.download_button.isVisible() and panel.import_button.isVisible()
        panel.download_button.click()
        dialog = panel.library
        assert dialog is not None and dialog.isVisible()
        assert dialog.tabs.currentIndex() == dialog.CATALOGUE
        qtbot.waitUntil(lambda: dialog.catalogue.count() > 0, timeout=WAIT_MS)
        names = [dialog.catalogue.item(i).text() for i in range(dialog.catalogue.count())]
        assert "densenet121-res224-all" in names
        # installing a model (here: importing our own file) switches the panel to the picker
        src = install_tiny_model("imported-model")
        moved = tmp_path / "imported-model.safetensors"
        shutil.move(src, moved)
        dialog.import_path(str(moved))
        qtbot.waitUntil(lambda: panel.stack.currentIndex() == READY, timeout=WAIT_MS)
        assert panel.current_model_name() == "imported-model"
    finally:
        close(window, qtbot)


def test_the_shipped_default_model_is_installed_and_chosen(qtbot, tmp_path: Path, monkeypatch) -> None:
    """The model shipped with the app (resources/models) is installed on first use, with no network,
    and the panel chooses it although another model comes first in the list."""
    from ml.models import library

    shipped = tmp_path / "resources" / library.file_name_for(library.DEFAULT_MODEL_NAME)
    shipped.parent.mkdir()
    shutil.move(install_tiny_model(library.DEFAULT_MODEL_NAME), shipped)
    install_tiny_model("aaa-first-in-the-list")
    monkeypatch.setattr(library, "bundled_default_model", lambda: shipped)
    window, panel = make_panel(qtbot, tmp_path)
    try:
        qtbot.waitUntil(lambda: panel.stack.currentIndex() == READY, timeout=WAIT_MS)
        names = [panel.model_combo.itemData(i) for i in range(panel.model_combo.count())]
        assert names == ["aaa-first-in-the-list", library.DEFAULT_MODEL_NAME]
        assert panel.current_model_name() == library.DEFAULT_MODEL_NAME
        qtbot.waitUntil(lambda: panel.loaded is not None, timeout=WAIT_MS)
        assert panel.loaded.manifest.name == library.DEFAULT_MODEL_NAME
        assert (library.models_dir() / shipped.name).is_file()  # installed into the library
    finally:
        close(window, qtbot)


# ---------------------------------------------------------------------------- run, results, heatmap


def test_run_on_current_image_shows_sorted_probabilities_and_gradcam(ready, qtbot) -> None:
    window, panel = ready
    assert panel.device_label is not None and "CPU" in panel.device_label.text()
    # the model is ready: the progress bar went away and stopped (it used to keep animating)
    assert panel.progress.isHidden() and not panel.progress.animating and not panel.progress.busy
    run_image(qtbot, panel)
    assert panel.progress.isHidden() and not panel.progress.animating
    rows = panel.table.rows()
    assert sorted(r.label for r in rows) == sorted(LABELS)
    probs = [r.probability for r in rows]
    assert probs == sorted(probs, reverse=True)
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)  # multi-class: softmax
    assert rows[0].positive and not rows[1].positive
    assert panel.table.model().rowCount() == 2
    assert panel.table.model().index(0, 1).data().endswith("%")

    image = window.viewer.image()
    layer = panel.layer
    assert layer.is_shown()
    assert layer.shape == image.shape == (1024, 1024)
    assert window.viewer.overlay_layer("Heatmap") is layer.item
    assert layer.item.image.shape[:2] == image.shape
    # the overlay covers exactly the image, before and after a rotation
    img_item = window.viewer.image_item()

    def corners(item):
        r = item.mapRectToScene(item.boundingRect())
        return [round(v, 3) for v in (r.left(), r.top(), r.width(), r.height())]

    assert corners(layer.item) == corners(img_item)
    before = corners(layer.item)
    # the image is square, so its corners alone cannot tell a right rotation from a wrong one: follow
    # an asymmetric point too (column 100, row 700), which a 90-degree turn moves to another corner
    from PySide6.QtCore import QPointF

    def scene_point(item, col: float, row: float) -> tuple[float, float]:
        """Where the source pixel (col, row) is on screen (the item may hold a downsampled copy)."""
        pt = item.mapToScene(QPointF(col * item.width() / image.shape[1], row * item.height() / image.shape[0]))
        return round(pt.x(), 3), round(pt.y(), 3)

    marker_before = scene_point(img_item, 100, 700)
    centre_before = scene_point(img_item, 512, 512)
    assert scene_point(layer.item, 100, 700) == marker_before
    window.viewer.rotate90()
    qtbot.wait(50)
    assert corners(layer.item) == corners(img_item)
    assert layer.item.sceneTransform() == img_item.sceneTransform()
    assert corners(layer.item) != before or window.viewer.orientation().m12() != 0
    marker_after = scene_point(img_item, 100, 700)
    assert marker_after != marker_before  # the image really turned
    assert scene_point(layer.item, 100, 700) == marker_after  # and the heatmap pixel turned with it
    # a quarter turn moves the point's offset from the image centre by 90 degrees (not 180, not 0)
    centre = scene_point(img_item, 512, 512)
    v0 = (marker_before[0] - centre_before[0], marker_before[1] - centre_before[1])
    v1 = (marker_after[0] - centre[0], marker_after[1] - centre[1])
    norm = v0[0] ** 2 + v0[1] ** 2
    assert abs(v0[0] * v1[0] + v0[1] * v1[1]) < 1e-2 * norm  # perpendicular
    assert abs(v1[0] ** 2 + v1[1] ** 2 - norm) < 1e-2 * norm  # same distance from the centre

    # display controls: threshold hides low values, the toggle hides the layer
    panel.controls.threshold.setValue(90)
    alpha = layer.item.image[..., 3]
    shown = panel.heatmap.values >= 0.9
    assert (alpha[~shown] == 0).all() and (alpha[shown] >= 241).all()  # alpha = sqrt(value)
    panel.controls.show_box.setChecked(False)
    assert not layer.item.isVisible()
    panel.controls.show_box.setChecked(True)
    assert layer.item.isVisible()
    panel.controls.opacity.setValue(70)
    assert layer.item.opacity() == pytest.approx(0.7)


def test_occlusion_shows_partial_map_and_can_be_cancelled(ready, qtbot) -> None:
    _window, panel = ready
    panel.controls.method.setCurrentIndex(panel.controls.method.findData("occlusion"))
    panel.controls.window.setValue(4)
    panel.controls.stride.setValue(1)  # 61 x 61 positions: long enough to cancel half-way
    partials = []
    panel.heatmapPartial.connect(partials.append)
    panel.explain()
    qtbot.waitUntil(lambda: len(partials) >= 1, timeout=WAIT_MS)
    assert panel.layer.is_shown() and not panel.heatmap.complete
    assert panel.layer.shape == (1024, 1024)
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.busy, timeout=WAIT_MS)
    assert panel.last_outcome == "cancelled"
    assert "Cancelled" in panel.status.text()
    assert panel.heatmap is not None and panel.heatmap.fraction_done < 1.0
    # a cancelled run leaves the panel usable
    panel.controls.method.setCurrentIndex(panel.controls.method.findData("gradcam"))
    panel.explain()
    qtbot.waitUntil(lambda: panel.heatmap is not None and panel.heatmap.complete and not panel.busy,
                    timeout=WAIT_MS)  # fmt: skip
    assert panel.last_outcome == "finished"


def test_results_follow_the_image_shown(ready, qtbot, tmp_path: Path, rsna: Path) -> None:
    """Issue 10 item 3: a result belongs to the image it was computed on. After a batch, opening an
    image that was not classified clears the table (it used to keep the last result next to it);
    going back to the classified image shows its result again."""
    window, panel = ready
    panel.auto_explain.setChecked(False)
    panel.run_image_button.click()  # as the user does
    qtbot.waitUntil(lambda: panel.prediction is not None and not panel.busy, timeout=WAIT_MS)
    assert Path(panel.prediction.path) == rsna
    folder = tmp_path / "batch"
    folder.mkdir()
    shutil.copy(rsna, folder / "copy.dcm")
    panel.run_folder([str(folder)])
    qtbot.waitUntil(lambda: panel.batch is not None and not panel.busy, timeout=WAIT_MS)
    assert Path(panel.prediction.path) == rsna  # the viewer still shows the RSNA image
    other = DATA / "dicom" / "rsna_cxr_pa_monochrome1.dcm"
    window.open_paths([str(other)])
    qtbot.waitUntil(lambda: window.viewer.image() is not None and Path(window.viewer.image().meta.path) == other,
                    timeout=WAIT_MS)  # fmt: skip
    qtbot.wait(50)
    assert panel.prediction is None
    assert panel.table.rows() == []
    assert not panel.pdf_button.isEnabled() and not panel.png_button.isEnabled()
    assert panel.csv_button.isEnabled()  # the batch can still be exported
    window.browser.select_path(str(rsna))
    qtbot.waitUntil(lambda: Path(window.viewer.image().meta.path) == rsna, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.prediction is not None, timeout=WAIT_MS)
    assert Path(panel.prediction.path) == rsna and len(panel.table.rows()) == 2


# ---------------------------------------------------------------------------- reports and CSV


def pdf_text(data: bytes) -> str:
    """The text drawn on the pages of a Qt-written PDF: each font's glyph codes mapped through its
    ToUnicode CMap (Qt embeds subset fonts, so the page text is not plain bytes in the file)."""
    objects: dict[int, tuple[bytes, bytes]] = {}  # number -> (dictionary, decoded stream)
    for m in re.finditer(rb"(\d+) 0 obj\s*(.*?)endobj", data, re.S):
        head, _, rest = m.group(2).partition(b"stream")
        stream = b""
        if rest:
            raw = rest.lstrip(b"\r\n").rsplit(b"endstream", 1)[0].rstrip(b"\r\n")
            try:
                stream = zlib.decompress(raw)
            except zlib.error:
                stream = raw
        objects[int(m.group(1))] = (head, stream)

    def cmap_of(number: int) -> dict[int, str]:
        cmap: dict[int, str] = {}
        text = objects[number][1]
        for a, _b, arr in re.findall(rb"<([0-9A-Fa-f]+)> <([0-9A-Fa-f]+)> \[([^\]]*)\]", text):
            for i, u in enumerate(re.findall(rb"<([0-9A-Fa-f]+)>", arr)):
                cmap[int(a, 16) + i] = chr(int(u, 16))
        for a, u in re.findall(rb"^<([0-9A-Fa-f]+)> <([0-9A-Fa-f]+)>$", text, re.M):
            cmap.setdefault(int(a, 16), chr(int(u, 16)))
        return cmap

    out = []
    for head, _stream in objects.values():
        if b"/Type /Page\n" not in head and b"/Type /Page\r" not in head:
            continue
        resources = objects[int(re.search(rb"/Resources (\d+) 0 R", head).group(1))][0]
        fonts = dict(re.findall(rb"/(F\d+) (\d+) 0 R", resources))
        cmaps = {name: cmap_of(int(re.search(rb"/ToUnicode (\d+) 0 R", objects[int(n)][0]).group(1)))
                 for name, n in fonts.items()}  # fmt: skip
        content = objects[int(re.search(rb"/Contents (\d+) 0 R", head).group(1))][1]
        cmap: dict[int, str] = {}
        for font, code in re.findall(rb"/(F\d+) [\d.]+ Tf|<([0-9A-Fa-f]+)> Tj", content):
            if font:
                cmap = cmaps[font]
            else:
                out.append(cmap.get(int(code, 16), "?"))
    return "".join(out)


def test_pdf_png_reports_and_csv(ready, qtbot, tmp_path: Path) -> None:
    window, panel = ready
    run_image(qtbot, panel)
    pdf = panel.export_pdf(tmp_path / "report.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    text = re.sub(r"\s+", " ", pdf_text(data))  # Qt maps the space glyph to a tab in its CMap
    assert "Not for diagnostic use" in text
    assert "Model: tiny-cxr, version 1.0" in text and "Pneumonia" in text and "Normal" in text
    assert "weak" in text and "strongest in this image" in text  # the heatmap's colour scale
    meta = window.viewer.image().meta
    assert "Validation: accuracy 0.500" in text  # from the model's manifest
    assert f"Patient ID: {meta.patient_id or '—'}" in text and "Study date:" in text
    assert "Study date: 1901-01-01" in text  # DICOM 19010101
    png = panel.export_png(tmp_path / "report.png")
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (1240, 1754)
        pixels = np.asarray(im.convert("RGB"))
    # the image part is not blank and carries heatmap colours (not only grey)
    top = pixels[300:1000].astype(int)
    assert top.std() > 10
    assert (np.abs(top[..., 0] - top[..., 2]) > 40).mean() > 0.001
    assert not list(tmp_path.glob(".*.part"))  # atomic writes leave no temporary file

    single_csv = panel.export_csv(tmp_path / "one.csv")
    rows = list(csv.DictReader(single_csv.open()))
    assert len(rows) == 1 and rows[0]["prediction"] in LABELS


def test_csv_batch_on_a_folder(ready, qtbot, tmp_path: Path, rsna: Path) -> None:
    window, panel = ready
    folder = tmp_path / "batch"
    folder.mkdir()
    shutil.copy(rsna, folder / "a.dcm")
    shutil.copy(DATA / "dicom" / "rsna_cxr_pa_monochrome1.dcm", folder / "b.dcm")
    nih = sorted((DATA / "cxr" / "nih").glob("*.png"))[0]
    shutil.copy(nih, folder / "c.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    panel.run_folder([str(folder)])
    qtbot.waitUntil(lambda: panel.batch is not None and not panel.busy, timeout=WAIT_MS)
    assert len(panel.batch.predictions) == 3
    assert any("broken.png" in path for path, _m in panel.batch.errors)
    assert "could not be read" in panel.status.text()
    out = panel.export_csv(tmp_path / "results.csv")
    with out.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        body = list(reader)
    assert header == ["path", "frame", *LABELS, "prediction", "in_scope", "scope_note", "disclaimer"]
    assert sorted(Path(r[0]).name for r in body) == ["a.dcm", "b.dcm", "c.png"]
    for r in body:
        p = [float(x) for x in r[2:4]]
        assert sum(p) == pytest.approx(1.0, abs=1e-4)
        assert r[4] == LABELS[int(np.argmax(p))]
        assert r[1] == "1" and r[header.index("disclaimer")] == "Not for diagnostic use." and r[header.index("in_scope")] in ("yes", "no")  # frames count from 1
    # "every open study" (the RSNA radiograph the fixture opened) gives the same numbers as the
    # folder run gave for its copy, and the table shows the viewer's image
    from_folder = next(p for p in panel.batch.predictions if p.path.endswith("a.dcm")).probabilities
    panel.run_all()
    qtbot.waitUntil(lambda: panel.last_outcome == "finished" and not panel.busy, timeout=WAIT_MS)
    assert [Path(p.path) for p in panel.batch.predictions] == [rsna]
    assert panel.batch.predictions[0].probabilities == pytest.approx(from_folder, abs=1e-5)
    assert panel.prediction is panel.batch.predictions[0]
    panel.run_series()
    qtbot.waitUntil(lambda: panel.last_outcome == "finished" and not panel.busy, timeout=WAIT_MS)
    assert [Path(p.path) for p in panel.batch.predictions] == [rsna]


# ---------------------------------------------------------------------------- library: refusing unsafe files


class _Boom:
    """Unpickling this would create a marker file (it must never run)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_import_of_malicious_pickle_is_refused(qtbot, tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    with evil.open("wb") as fh:
        torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Boom(str(marker))}, fh)
    assert not marker.exists()
    window, panel = make_panel(qtbot, tmp_path)
    try:
        qtbot.waitUntil(lambda: panel.stack.currentIndex() == EMPTY, timeout=WAIT_MS)
        dialog = panel.open_library()
        dialog.import_path(
            str(evil), {"architecture": "cxr_resnet_small", "labels": LABELS, "task": "multiclass"}
        )
        qtbot.waitUntil(lambda: bool(dialog.last_error), timeout=WAIT_MS)
        assert "refused" in dialog.last_error and "run code" in dialog.last_error
        assert dialog.message.text() == dialog.last_error
        assert not marker.exists()
        assert panel.stack.currentIndex() == EMPTY
        # a file that is not a model at all: one readable line too
        junk = tmp_path / "notes.safetensors"
        junk.write_bytes(b"hello, this is not a model")
        dialog.last_error = ""
        dialog.import_path(str(junk))
        qtbot.waitUntil(lambda: bool(dialog.last_error), timeout=WAIT_MS)
        assert "not a model file" in dialog.last_error
        # the crafted file really is armed: unrestricted unpickling (never done by the app) runs it
        torch.load(evil, weights_only=False)
        assert marker.exists()
    finally:
        close(window, qtbot)


def test_import_pth_through_the_form_and_download_offline_message(qtbot, tmp_path: Path, monkeypatch) -> None:
    import dataclasses
    import socket

    import torch

    from ml.models import catalogue
    from ml.models.registry import build_model

    pth = tmp_path / "my_resnet.pth"
    torch.save({"state_dict": build_model("cxr_resnet_small", 2, 1).state_dict()}, pth)
    window, panel = make_panel(qtbot, tmp_path)
    try:
        qtbot.waitUntil(lambda: panel.stack.currentIndex() == EMPTY, timeout=WAIT_MS)
        dialog = panel.open_library()
        dialog.import_path(str(pth))  # a .pth: the form asks what it is
        qtbot.waitUntil(lambda: getattr(dialog, "import_form", None) is not None, timeout=WAIT_MS)
        form = dialog.import_form
        assert "cxr_resnet_small" in [form.architecture.itemText(i) for i in range(form.architecture.count())]
        form.architecture.setCurrentText("cxr_resnet_small")
        form.labels.setPlainText("Normal, Pneumonia")
        form.accept()
        qtbot.waitUntil(lambda: panel.stack.currentIndex() == READY, timeout=WAIT_MS)
        assert panel.current_model_name() == "my_resnet"
        qtbot.waitUntil(lambda: dialog.installed.count() == 1, timeout=WAIT_MS)
        assert "Normal, Pneumonia" in dialog.card.toPlainText()
        assert "Not for diagnostic use" in dialog.card.toPlainText()
        # offline: the entry's server refuses the connection (a closed port on 127.0.0.1; tests never
        # reach out), so the download fails with one readable line, and nothing is installed
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed_port = sock.getsockname()[1]
        real_get_entry = catalogue.get_entry

        def offline_entry(name, path=None):
            entry = real_get_entry(name, path)
            return dataclasses.replace(entry, url=f"http://127.0.0.1:{closed_port}/{entry.filename}")

        monkeypatch.setattr(catalogue, "get_entry", offline_entry)
        dialog.show_catalogue()
        dialog.download("densenet121-res224-all")
        qtbot.waitUntil(lambda: bool(dialog.last_error), timeout=WAIT_MS)
        assert "Cannot reach" in dialog.last_error and "network" in dialog.last_error
        assert "127.0.0.1" in dialog.last_error  # the patched entry was used: no traffic left this machine
        assert "\n" not in dialog.last_error
        # remove: the panel goes back to the download/import offer
        dialog.remove("my_resnet")
        qtbot.waitUntil(lambda: panel.stack.currentIndex() == EMPTY, timeout=WAIT_MS)
    finally:
        close(window, qtbot)


def test_heatmap_without_positive_evidence_says_so(qtbot, tmp_path: Path, rsna: Path) -> None:
    """A map with no positive evidence is not drawn as if it were one: the panel says so."""
    install_tiny_model(seed=7, no_evidence=True)  # any seed: zero by construction
    window, panel = make_panel(qtbot, tmp_path)
    qtbot.waitUntil(lambda: panel.loaded is not None, timeout=WAIT_MS)
    window.open_paths([str(rsna)])
    qtbot.waitUntil(lambda: window.viewer.image() is not None, timeout=WAIT_MS)
    run_image(qtbot, panel)
    assert float(panel.heatmap.values.max()) == 0.0
    assert "no positive evidence" in panel.status.text()
    assert (panel.layer.item.image[..., 3] == 0).all()  # nothing tints the image
    close(window, qtbot)


def test_uncalibrated_labels_are_greyed_and_listed_last(qtbot) -> None:
    """A label without an operating point (Prediction.uncalibrated) is never positive and is not
    ranked among the calibrated ones, even with the highest probability."""
    from types import SimpleNamespace

    from PySide6.QtCore import Qt

    from app.analysis.results import UNCALIBRATED_COLOUR, ResultsTable

    prediction = SimpleNamespace(
        labels=["Effusion", "Hernia", "Nodule"], probabilities=[0.5, 0.9, 0.2], thresholds=[0.4, None, 0.1],
        calibrated=[0.6, float("nan"), 0.7], uncalibrated=[False, True, False], positives=["Effusion", "Nodule"],
    )  # fmt: skip
    table = ResultsTable()
    qtbot.addWidget(table)
    table.set_prediction(prediction)
    rows = table.rows()
    assert [r.label for r in rows] == ["Nodule", "Effusion", "Hernia"]  # calibrated order, uncalibrated last
    assert [r.positive for r in rows] == [True, True, False]
    model = table.model()
    assert model.index(2, 0).data() == "Hernia (uncalibrated)"
    assert model.index(2, 0).data(Qt.ItemDataRole.ForegroundRole).color() == UNCALIBRATED_COLOUR
    assert "never called positive" in model.index(2, 1).data(Qt.ItemDataRole.ToolTipRole)
    assert model.index(0, 0).data() == "Nodule"


def test_heatmap_colour_scale_follows_colour_map_and_threshold(qtbot) -> None:
    """The legend next to the heatmap controls: the colour map from weak (left) to strongest (right),
    greyed below the threshold, i.e. exactly the values that are not drawn over the image."""
    from app.analysis.heatmap import LEGEND_HIDDEN, HeatmapControls, lookup_table

    controls = HeatmapControls()
    qtbot.addWidget(controls)

    def legend_rgb() -> np.ndarray:
        image = controls.legend.pixmap().toImage()
        return np.array([[image.pixelColor(x, 6).getRgb()[:3] for x in range(image.width())]])[0]

    controls.threshold.setValue(0)
    rgb = legend_rgb()
    lut = lookup_table("inferno")
    assert tuple(rgb[0]) == tuple(lut[0, :3]) and tuple(rgb[-1]) == tuple(lut[255, :3])
    controls.threshold.setValue(50)
    rgb = legend_rgb()
    half = len(rgb) // 2
    assert all(tuple(c) == LEGEND_HIDDEN for c in rgb[: half - 1])  # not drawn: grey
    assert tuple(rgb[-1]) == tuple(lut[255, :3]) and tuple(rgb[half + 1]) != LEGEND_HIDDEN
    controls.colour_map.setCurrentText("viridis")
    assert tuple(legend_rgb()[-1]) == tuple(lookup_table("viridis")[255, :3])


def test_an_out_of_scope_image_gets_the_banner_and_show_anyway(ready, qtbot, tmp_path: Path) -> None:
    """Issue 8: an MR is not a frontal chest radiograph: banner, results hidden, 'Show anyway' shows them."""
    window, panel = ready
    mr = DATA / "dicom" / "MR-SIEMENS-DICOM-WithOverlays.dcm"
    window.open_paths([str(mr)])
    qtbot.waitUntil(lambda: Path(window.viewer.image().meta.path) == mr, timeout=WAIT_MS)
    run_image(qtbot, panel, explain=False)
    assert panel.ui.scope_banner.isVisible()
    assert panel.ui.scope_banner.text().startswith("This does not look like a frontal chest radiograph: results hidden")
    assert "modality MR" in panel.ui.scope_banner.text()
    assert panel.table.rows() == [] and not panel.ui.scope_toggle.isChecked()
    words = " ".join(pdf_text(panel.export_pdf(tmp_path / "mr.pdf").read_bytes()).split())
    assert "does not look like a frontal chest radiograph: results hidden" in words
    panel.ui.scope_toggle.click()  # "Show anyway (research use)"
    assert len(panel.table.rows()) == 2 and panel.ui.scope_banner.isVisible()
