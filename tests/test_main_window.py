"""The main window end to end: drop files/folders, browse, view, tags, errors, settings, help.

Real files from ../shared/data are read in place (copied only into tmp_path when a test needs a
folder of them). Settings live in a tmp INI file, never in the user's profile.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.main_window import MainWindow
from app.settings import Settings
from app.workers import running_jobs
from tests.helpers.dicom_factory import new_uid, write_dicom, write_sr

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WAIT_MS = 60_000  # generous: the test machine has 2 shared cores


@pytest.fixture(scope="module")
def data() -> Path:
    if not (DATA / "dicom" / "rsna_cxr_pa.dcm").is_file():
        pytest.fail(f"shared test data missing at {DATA}")
    return DATA


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Anything that would still build a default QSettings goes to tmp_path too.
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    return Settings(tmp_path / "settings.ini")


def make_window(qtbot, settings: Settings) -> MainWindow:
    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.show()
    return window


@pytest.fixture
def window(qtbot, settings: Settings):
    w = make_window(qtbot, settings)
    yield w
    w.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)


def drop(window: MainWindow, paths: list[Path]) -> bool:
    """Send a real drag-enter + drop with file URLs to the window; returns whether it was accepted."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(window.width() / 2, window.height() / 2)
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, event)
    return event.isAccepted()


def wait_indexed(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.indexer.busy, timeout=WAIT_MS)


def wait_image(qtbot, window: MainWindow, path: Path) -> None:
    def shown() -> bool:
        image = window.viewer.image()
        return image is not None and Path(image.meta.path) == path

    qtbot.waitUntil(shown, timeout=WAIT_MS)


def wait_notice(qtbot, window: MainWindow) -> str:
    qtbot.waitUntil(lambda: window.last_notice is not None, timeout=WAIT_MS)
    return f"{window.last_notice.text()}\n{window.last_notice.informativeText()}"


def test_drop_real_file_shows_study_image_and_tags(qtbot, window, data):
    rsna = data / "dicom" / "rsna_cxr_pa.dcm"
    assert drop(window, [rsna])
    wait_image(qtbot, window, rsna)  # the first image opened is shown without a click
    wait_indexed(qtbot, window)

    rows = window.browser.row_texts()
    assert rows[0].startswith("16d7f894-55d7-4d95-8957-d18987f0e981")  # patient (anonymised name)
    assert rows[1].startswith("1901-01-01")  # study date
    assert rows[2].startswith("CR · #1  view: PA")  # series: modality, number, description
    assert window.viewer.image().shape == (1024, 1024)
    assert window.browser.current_entry().path == str(rsna)

    # tag panel: every element, PixelSpacing among them, and the search filters
    qtbot.waitUntil(lambda: window.tags.tree.topLevelItemCount() > 30, timeout=WAIT_MS)
    everything = window.tags.visible_rows()
    assert ("(0028,0030)", "Pixel Spacing", "0.168\\0.168") in everything
    pixel = next(r for r in everything if r[0] == "(7FE0,0010)")
    assert pixel[2].startswith("<pixel data:") and "bytes" in pixel[2]
    for query in ("PixelSpacing", "0028,0030", "0.168"):
        window.tags.set_filter(query)
        shown = window.tags.visible_rows()
        assert [r[0] for r in shown] == ["(0028,0030)"], query
    window.tags.set_filter("")
    assert len(window.tags.visible_rows()) == len(everything)

    # thumbnails fill in in the background
    qtbot.waitUntil(lambda: window.thumbnails.icon(str(rsna)) is not None, timeout=WAIT_MS)
    assert window.windowTitle().startswith("rsna_cxr_pa.dcm")


def test_drop_folder_indexes_every_image(qtbot, window, data, tmp_path):
    folder = tmp_path / "case"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(data / "dicom" / "rsna_cxr_pa.dcm", folder / "a.dcm")
    shutil.copy(data / "dicom" / "rsna_cxr_pa_monochrome1.dcm", folder / "sub" / "b.dcm")
    shutil.copy(data / "cxr" / "nih" / "00000001_000.png", folder / "sub" / "c.png")
    study, series = new_uid(), new_uid()
    for i in (1, 2):
        write_dicom(folder / "synthetic" / f"img{i}.dcm", rows=64, columns=64, patient_name="Doe^Jane",
                    patient_id="P1", study_uid=study, series_uid=series, instance_number=i)

    assert drop(window, [folder])
    wait_indexed(qtbot, window)
    index = window.browser.index
    assert sorted(Path(e.path).name for e in index.instances()) == ["a.dcm", "b.dcm", "c.png", "img1.dcm", "img2.dcm"]
    assert index.errors == []
    rows = window.browser.row_texts()
    assert any(r.startswith("Doe Jane  ·  P1") for r in rows)
    assert any("2 images" in r for r in rows)  # the two-file series lists both files as children
    assert any(r.startswith("#1  img1.dcm") for r in rows) and any(r.startswith("#2  img2.dcm") for r in rows)
    assert window.viewer.image() is not None  # the first image was shown automatically
    # series thumbnails all arrive
    series_paths = [str(folder / "a.dcm"), str(folder / "sub" / "b.dcm"), str(folder / "sub" / "c.png")]
    qtbot.waitUntil(lambda: all(window.thumbnails.icon(p) is not None for p in series_paths), timeout=WAIT_MS)

    # selecting another series decodes and shows it
    window.browser.select_path(str(folder / "sub" / "c.png"))
    wait_image(qtbot, window, folder / "sub" / "c.png")
    assert "no DICOM header" in window.tags.summary.text()


def test_drop_text_file_gives_a_message_and_the_app_keeps_working(qtbot, window, data, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("Follow-up in two weeks.\n")
    assert drop(window, [notes])
    text = wait_notice(qtbot, window)
    assert "could not be opened" in text and "notes.txt" in text
    assert "notes.txt" in window.statusBar().currentMessage()
    assert window.viewer.image() is None and len(window.browser.index) == 0

    rsna = data / "dicom" / "rsna_cxr_pa.dcm"
    assert drop(window, [rsna])
    wait_image(qtbot, window, rsna)


def test_undecodable_syntax_names_it_and_keeps_running(qtbot, window, data):
    liver = data / "dicom" / "liver_deflate.dcm"
    window.open_paths([liver])
    text = wait_notice(qtbot, window)
    assert "Deflated Image Frame Compression" in text
    assert "Something went wrong" not in text
    assert window.viewer.image() is None
    # the header is still shown in the tag panel
    qtbot.waitUntil(lambda: window.tags.tree.topLevelItemCount() > 10, timeout=WAIT_MS)
    assert any(r[1] == "Transfer Syntax UID" for r in window.tags.visible_rows())

    rsna = data / "dicom" / "rsna_cxr_pa.dcm"
    window.open_paths([rsna])
    wait_image(qtbot, window, rsna)


def test_truncated_file_gives_a_clear_error(qtbot, window, data):
    window.open_paths([data / "dicom" / "emri_small_jpeg_2k_lossless_too_short.dcm"])
    text = wait_notice(qtbot, window)
    assert "truncated" in text.lower() and "emri_small_jpeg_2k_lossless_too_short.dcm" in text
    assert window.viewer.image() is None


def test_non_image_object_is_listed_but_not_shown(qtbot, window, tmp_path):
    study = new_uid()
    write_sr(tmp_path / "report.dcm", patient_name="Doe^Jane", patient_id="P1", study_uid=study)
    window.open_paths([tmp_path / "report.dcm"])
    wait_indexed(qtbot, window)
    assert any("no image" in r.lower() or "Basic Text SR" in r for r in window.browser.row_texts())
    qtbot.waitUntil(lambda: "no image to show" in window.statusBar().currentMessage(), timeout=WAIT_MS)
    assert "Basic Text SR" in window.statusBar().currentMessage()
    assert window.viewer.image() is None
    qtbot.waitUntil(lambda: window.tags.tree.topLevelItemCount() > 5, timeout=WAIT_MS)


def test_recent_files_and_geometry_survive_a_new_window(qtbot, settings, data):
    a, b = data / "dicom" / "rsna_cxr_pa.dcm", data / "dicom" / "RG3_J2KR.dcm"
    first = make_window(qtbot, settings)
    first.resize(1111, 777)
    first.open_paths([a])
    first.open_paths([b])
    first.open_paths([a])  # deduplicated, moved to the front
    wait_indexed(qtbot, first)
    first.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)

    second = make_window(qtbot, Settings(settings.qsettings.fileName()))
    assert second.settings.recent_files() == [str(a), str(b)]
    second.recent_menu.aboutToShow.emit()
    texts = [act.text() for act in second.recent_menu.actions()]
    assert "rsna_cxr_pa.dcm" in texts[0] and "RG3_J2KR.dcm" in texts[1]
    assert (second.width(), second.height()) == (1111, 777)
    # opening from the recent list works
    second.recent_menu.actions()[1].trigger()
    wait_image(qtbot, second, b)
    second.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)


def test_recent_list_keeps_ten(settings, tmp_path):
    for i in range(14):
        settings.add_recent(str(tmp_path / f"f{i}.dcm"))
    recent = settings.recent_files()
    assert len(recent) == 10 and recent[0].endswith("f13.dcm") and recent[-1].endswith("f4.dcm")


def test_help_lists_every_viewer_shortcut(qtbot, window):
    dialog = window.show_shortcuts()
    qtbot.addWidget(dialog)
    listed = dict(dialog.entries())
    with_keys = [a for a in window.viewer_actions if a.shortcut().toString()]
    assert len(with_keys) >= 7  # one per tool at least
    for action in with_keys:
        name = action.text().replace("&", "").rstrip(".…").strip()
        assert name in listed, name
        assert listed[name] == ", ".join(k.toString() for k in action.shortcuts())
    assert "Open files" in listed
    view_menu = next(m for m in window.menuBar().actions() if m.text() == "&View").menu()
    assert set(with_keys) <= set(view_menu.actions())
    assert window.analysis_menu.title() == "&Analysis"


def test_about_says_not_for_diagnostic_use(qtbot, window):
    from app.dialogs import show_about

    box = show_about(window)
    qtbot.addWidget(box)
    assert "Not for diagnostic use" in box.text()
    assert window.disclaimer.text() == "Not for diagnostic use"


def test_main_opens_command_line_paths_and_returns(qtbot, tmp_path, data):
    from app.__main__ import main

    app = QApplication.instance()
    seen: dict[str, object] = {}

    def check_then_quit() -> None:
        windows = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        seen["image"] = windows[-1].viewer.image() if windows else None
        if seen["image"] is None and seen.setdefault("tries", 0) < 300:  # type: ignore[operator]
            seen["tries"] = int(seen["tries"]) + 1  # type: ignore[arg-type]
            QTimer.singleShot(100, check_then_quit)
            return
        for w in windows:
            w.close()
        app.quit()

    QTimer.singleShot(200, check_then_quit)
    code = main([str(data / "dicom" / "rsna_cxr_pa.dcm"), "--settings", str(tmp_path / "cli.ini")])
    assert code == 0
    assert seen["image"] is not None and seen["image"].meta.path.endswith("rsna_cxr_pa.dcm")
    assert app.applicationName() == "CXR Studio" and app.organizationName() == "CXR Studio"
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)


def test_torch_is_not_imported_at_start_up(tmp_path, data):
    script = textwrap.dedent(f"""
        import sys
        from PySide6.QtWidgets import QApplication
        from PySide6.QtTest import QTest
        app = QApplication(["x", "-platform", "offscreen"])
        from app.main_window import MainWindow
        from app.settings import Settings
        w = MainWindow(Settings({str(tmp_path / "s.ini")!r}))
        w.show()
        w.open_paths([{str(data / "dicom" / "rsna_cxr_pa.dcm")!r}])
        for _ in range(200):
            QTest.qWait(50)
            if w.viewer.image() is not None:
                break
        print("shown" if w.viewer.image() is not None else "not shown")
        print("torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["shown", "False"]
