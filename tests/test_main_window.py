"""The main window end to end: drop files/folders, browse, view, tags, errors, settings, help.

Real files from ../shared/data (or its verified download cache) are read in place (copied only into tmp_path when a test needs a
folder of them). Settings live in a tmp INI file, never in the user's profile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QDockWidget, QScrollArea

from app.main_window import MainWindow
from app.settings import Settings
from app.workers import running_jobs
from tests.helpers.dicom_factory import new_uid, write_dicom, write_sr

REPO = Path(__file__).resolve().parents[1]
WAIT_MS = 60_000  # generous: the test machine has 2 shared cores


@pytest.fixture(scope="module")
def data(shared_data: Path) -> Path:
    """../shared/data or its verified download cache (tests/conftest.py)."""
    return shared_data


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
    """Drag file URLs over the middle of the window (the image view) and drop them.

    The drag-enter goes to the widget under the cursor, as a real drag would, so the test also
    checks that child widgets pass it on to the window; the drop goes to the widget that accepted.
    """
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    centre = window.rect().center()
    target = window.childAt(centre) or window
    with warnings.catch_warnings():  # PySide marks the QPoint constructor deprecated; it is the only one
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(target.mapFrom(window, centre), Qt.DropAction.CopyAction, mime,
                                Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(QPointF(centre), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
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
    shutil.copy(data / "cxr" / "padchest" / "16747_3_1.jpg", folder / "sub" / "b.jpg")
    shutil.copy(data / "cxr" / "nih" / "00000001_000.png", folder / "sub" / "c.png")
    study, series = new_uid(), new_uid()
    for i in (1, 2):
        write_dicom(folder / "synthetic" / f"img{i}.dcm", rows=64, columns=64, patient_name="Doe^Jane",
                    patient_id="P1", study_uid=study, series_uid=series, instance_number=i)

    busy = []
    window.progress.busyChanged.connect(busy.append)
    assert drop(window, [folder])
    wait_indexed(qtbot, window)
    qtbot.waitUntil(lambda: busy == [True, False], timeout=WAIT_MS)  # the status bar progress came and went
    assert window.progress.isHidden() and not window.progress.animating
    index = window.browser.index
    assert sorted(Path(e.path).name for e in index.instances()) == ["a.dcm", "b.jpg", "c.png", "img1.dcm", "img2.dcm"]
    assert index.errors == []
    rows = window.browser.row_texts()
    assert any(r.startswith("Doe Jane  ·  P1") for r in rows)
    assert any("2 images" in r for r in rows)  # the two-file series lists both files as children
    assert any(r.startswith("#1  img1.dcm") for r in rows) and any(r.startswith("#2  img2.dcm") for r in rows)
    wait_image(qtbot, window, folder / "a.dcm")  # the first image found is shown automatically
    # series thumbnails all arrive
    series_paths = [str(folder / "a.dcm"), str(folder / "sub" / "b.jpg"), str(folder / "sub" / "c.png")]
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
    assert window.settings.recent_files() == []  # a stray text file is not worth remembering

    rsna = data / "dicom" / "rsna_cxr_pa.dcm"
    assert drop(window, [rsna])
    wait_image(qtbot, window, rsna)


def test_undecodable_syntax_names_it_and_keeps_running(qtbot, window, data, tmp_path):
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

    # export what is on screen, with and without the overlays
    from PIL import Image

    assert window.export_action.isEnabled()
    assert window.export_png(str(tmp_path / "with"), with_overlays=True)
    assert window.export_png(str(tmp_path / "plain.png"), with_overlays=False)
    for name in ("with.png", "plain.png"):
        with Image.open(tmp_path / name) as im:
            assert im.width > 100 and im.height > 100

    window.close_all_action.trigger()
    assert window.viewer.image() is None and window.browser.row_texts() == []
    assert window.tags.tree.topLevelItemCount() == 0 and not window.export_action.isEnabled()


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
    first.resize(720, 640)  # the offscreen screen is 800x800
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
    assert (second.width(), second.height()) == (720, 640)
    # opening from the recent list works
    second.recent_menu.actions()[1].trigger()
    wait_image(qtbot, second, b)
    second.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)


def test_panels_built_after_the_first_paint_go_where_the_user_left_them(qtbot, settings):
    """The app's launch builds the analysis/training/PACS parts once the window shows
    (defer_panels): before that the window has none of them; after, the analysis dock sits where
    the previous session left it, and on a fresh profile it is the tab on top beside Tags."""
    first = make_window(qtbot, settings)
    first.analysis_dock.setFloating(False)
    first.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, first.analysis_dock)  # moved by the user
    assert first.dockWidgetArea(first.analysis_dock) == Qt.DockWidgetArea.LeftDockWidgetArea
    first.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)

    second = MainWindow(Settings(settings.qsettings.fileName()), defer_panels=True)
    qtbot.addWidget(second)
    assert second.analysis_panel is None and second.pacs is None and second.training_action is None
    second.show()
    second.install_panels()
    qtbot.waitUntil(lambda: not second.analysis_dock.visibleRegion().isEmpty(), timeout=WAIT_MS)  # laid out
    assert second.dockWidgetArea(second.analysis_dock) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert second.tabifiedDockWidgets(second.tags_dock) == []
    assert second.training_action is not None and second.pacs_menu is not None
    second.install_panels()  # idempotent: one analysis dock, one Training menu
    titles = [a.text().replace("&", "") for a in second.menuBar().actions()]
    assert titles.count("Training") == 1 and titles.count("PACS") == 1
    assert len([d for d in second.findChildren(QDockWidget) if d.windowTitle() == "Analysis"]) == 1
    second.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)

    fresh = MainWindow(Settings(settings.qsettings.fileName() + ".fresh.ini"), defer_panels=True)
    qtbot.addWidget(fresh)
    fresh.show()
    fresh.install_panels()
    qtbot.waitUntil(lambda: fresh.tabifiedDockWidgets(fresh.tags_dock) == [fresh.analysis_dock], timeout=WAIT_MS)
    assert fresh.dockWidgetArea(fresh.analysis_dock) == Qt.DockWidgetArea.RightDockWidgetArea
    qtbot.waitUntil(lambda: not fresh.analysis_dock.visibleRegion().isEmpty(), timeout=WAIT_MS)  # on top
    # and all of it fits the dock's default width: no sideways scrolling to reach a button
    scroll = fresh.analysis_panel.findChild(QScrollArea)
    qtbot.waitUntil(lambda: scroll.viewport().width() >= 400, timeout=WAIT_MS)
    assert scroll.widget().minimumSizeHint().width() <= scroll.viewport().width()
    qtbot.waitUntil(lambda: not scroll.horizontalScrollBar().isVisible(), timeout=5_000)
    fresh.close()
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
    in_menus = {a for sub in view_menu.actions() if sub.menu() for a in sub.menu().actions()}
    assert set(with_keys) <= in_menus  # every viewer command is reachable from View
    tools = next(sub.menu() for sub in view_menu.actions() if sub.text() == "&Tools")
    assert [a.data() for a in tools.actions()] == ["wl", "pan", "zoom", "distance", "angle", "rect", "ellipse"]
    assert window.analysis_menu.title() == "&Analysis"


def test_about_says_not_for_diagnostic_use(qtbot, window):
    from app.dialogs import show_about

    box = show_about(window)
    qtbot.addWidget(box)
    assert "Not for diagnostic use" in box.text()
    assert window.disclaimer.text() == "Not for diagnostic use"


def test_main_opens_command_line_paths_without_importing_torch(tmp_path, data):
    """``python -m app PATH`` end to end, in its own process (an event loop that has quit cannot
    be restarted inside the test process): the window shows the file, torch is not loaded."""
    script = textwrap.dedent(f"""
        import sys
        from PySide6.QtCore import QTimer
        from app.__main__ import create_application, main
        from app.main_window import MainWindow
        import ml.models.library
        # no shipped default model here: the analysis panel installs and warms it up in the
        # background at start (that loads torch, by design); this test is about opening files
        ml.models.library.bundled_default_model = lambda: None

        app, _ = create_application(["-platform", "offscreen"])
        seen = {{"tries": 0}}

        def check():
            windows = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow)]
            image = windows[0].viewer.image() if windows else None
            if image is None and seen["tries"] < 400:
                seen["tries"] += 1
                QTimer.singleShot(50, check)
                return
            print("shown:", image.meta.path if image is not None else None)
            print("analysis panel:", windows[0].analysis_panel is not None if windows else None)
            print("torch loaded:", "torch" in sys.modules)
            print("names:", app.applicationName(), "/", app.organizationName())
            for w in windows:
                w.close()

        QTimer.singleShot(100, check)
        code = main([{str(data / "dicom" / "rsna_cxr_pa.dcm")!r}, "--settings", {str(tmp_path / "cli.ini")!r}])
        print("exit:", code)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=180,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    assert lines["shown"].endswith("rsna_cxr_pa.dcm")
    assert lines["torch loaded"] == "False"
    assert lines["analysis panel"] == "True"  # built once the window showed, before the file opened
    assert lines["names"] == "CXR Studio / CXR Studio"
    assert lines["exit"] == "0"
    assert (tmp_path / "cli.ini").is_file()  # settings went where they were told (window state saved)


def test_jobs_report_progress_results_readable_errors_and_cancel(qtbot, caplog):
    from app.workers import Job
    from ml.errors import NotDicomError

    def counting(progress, cancel):
        for i in range(3):
            cancel.check()
            progress(i + 1, 3, "step")
        return "done"

    job = Job(counting, "counting")
    seen = []
    job.signals.progress.connect(lambda d, t, m: seen.append((d, t, m)))
    with qtbot.waitSignal(job.signals.finished, timeout=WAIT_MS) as result:
        job.start()
    assert result.args == ["done"] and seen[-1] == (3, 3, "step")

    def bad_file(_p, _c):
        raise NotDicomError("notes.txt is not a DICOM file.")

    job = Job(bad_file, "reading")
    with qtbot.waitSignal(job.signals.error, timeout=WAIT_MS) as result:
        job.start()
    assert result.args == ["notes.txt is not a DICOM file."]

    def bug(_p, _c):
        raise ZeroDivisionError("oops")

    job = Job(bug, "testing a bug")
    with caplog.at_level("ERROR"), qtbot.waitSignal(job.signals.error, timeout=WAIT_MS) as result:
        job.start()
    assert result.args[0].startswith("Something went wrong while testing a bug")
    assert "ZeroDivisionError" in caplog.text  # the traceback is in the log, not in the message

    job = Job(counting, "cancelled")
    job.cancel()
    with qtbot.waitSignal(job.signals.cancelled, timeout=WAIT_MS):
        job.start()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)


def test_unexpected_gui_errors_are_logged_and_shown(qtbot, window, monkeypatch, caplog):
    from app.dialogs import install_exception_hook

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    install_exception_hook(window)
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError as exc:
        with caplog.at_level("ERROR"):
            sys.excepthook(type(exc), exc, exc.__traceback__)
    assert "ZeroDivisionError" in caplog.text
    boxes = [w for w in QApplication.topLevelWidgets() if w.objectName() == "notice" and w.isVisible()]
    assert any(b.text() == "Something went wrong." for b in boxes)
    for b in boxes:
        b.close()


def test_app_entry_point_runs_cli_subcommands_without_a_window(data, tmp_path) -> None:
    """The double-click app is also the `cxr` tool (the wizard runs `<app> train ...` when frozen)."""
    script = (
        "import sys; from app.__main__ import main; "
        f"code = main(['render', {str(data / 'dicom' / 'rsna_cxr_pa.dcm')!r}, '-o', {str(tmp_path / 'r.png')!r}]); "
        "print('qt app:', __import__('PySide6.QtWidgets', fromlist=['x']).QApplication.instance()); sys.exit(code)"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=180,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "r.png").is_file() and "qt app: None" in out.stdout


def test_the_app_entry_point_saves_settings_and_leaves_quickly(tmp_path) -> None:
    """``cxr-studio`` ends with a fast exit (no second-long interpreter teardown after Ctrl+Q): the
    exit status is the event loop's and what the session changed in the settings is on disk."""
    ini = tmp_path / "quick.ini"
    script = textwrap.dedent(f"""
        import sys
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
        import ml.models.library
        ml.models.library.bundled_default_model = lambda: None
        from app.__main__ import create_application, run
        from app.main_window import MainWindow

        app, _ = create_application(["-platform", "offscreen"])  # the timer needs the application

        def quit_soon():
            windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
            windows[0].settings.qsettings.setValue("test/marker", "kept")  # not synced by hand
            windows[0].close()

        QTimer.singleShot(500, quit_soon)
        sys.argv = ["cxr-studio", "--settings", {str(ini)!r}]
        run()
        print("not reached")
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=180,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert "not reached" not in out.stdout
    assert "marker=kept" in ini.read_text()
