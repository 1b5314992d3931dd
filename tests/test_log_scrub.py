"""Patient names and IDs never reach errors.log or the GUI log (issue 11 item 3), even when a
third-party message quotes them: pydicom's BytesLengthException for a PatientName with the wrong
VR contains the raw name bytes. The file is made here from rsna_cxr_pa.dcm."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import pydicom
import pytest

from ml import scrub
from ml.cli import main as cxr

NAME, FAMILY, GIVEN, PID = "Quixote^Zebulonia", "Quixote", "Zebulonia", "ZQX4417PID"
SECRETS = (FAMILY, GIVEN, PID, "Quixote^", "^Zebulonia")


def wrong_vr_file(dicom_dir: Path, dest: Path) -> Path:
    """rsna_cxr_pa.dcm whose PatientName (18 bytes) is stored with VR UL (4 bytes per value)."""
    ds = pydicom.dcmread(dicom_dir / "rsna_cxr_pa.dcm")
    ds.PatientName, ds.PatientID = NAME, PID
    ds.save_as(dest)
    raw = dest.read_bytes()
    at = raw.index(b"\x10\x00\x10\x00PN")
    dest.write_bytes(raw[: at + 4] + b"UL" + raw[at + 6:])
    return dest


def pydicom_error(path: Path) -> BaseException:
    """The real exception pydicom raises when the name's value is used (as a tag panel does)."""
    ds = pydicom.dcmread(path)
    try:
        str(ds.PatientName)
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError("the wrong VR did not make pydicom fail")


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in {where}:\n{text}"


@pytest.fixture(autouse=True)
def _fresh_scrub_set():
    scrub.clear()
    yield
    scrub.clear()


def test_the_exception_really_quotes_the_name(dicom_dir, tmp_path):
    assert NAME in str(pydicom_error(wrong_vr_file(dicom_dir, tmp_path / "wrong_vr.dcm")))


def test_scrub_removes_registered_values_byte_literals_and_person_names():
    scrub.register(b"Doe^Jane ", "A12345")
    text = scrub.scrub("patient Jane Doe id A12345 (line 412): b'x\\x00y' and Smith^John")
    assert "Jane" not in text and "Doe" not in text and "A12345" not in text and "Smith" not in text
    assert "x\\x00y" not in text and "line 412" in text  # ordinary numbers stay readable
    for i in range(scrub.MAX_VALUES + 10):  # bounded: old values go first
        scrub.register(f"value{i:05d}")
    assert "A12345" in scrub.scrub("A12345") and scrub.scrub(f"value{scrub.MAX_VALUES + 9:05d}") == scrub.REDACTED


def test_cli_info_render_and_errors_log_hold_no_name_or_id(dicom_dir, tmp_path, capsys):
    from ml.logfile import error_log_path, log_unexpected

    path = wrong_vr_file(dicom_dir, tmp_path / "wrong_vr.dcm")
    assert cxr(["info", str(path)]) == 0
    assert cxr(["render", str(path), "-o", str(tmp_path / "out.png")]) == 0
    out = capsys.readouterr()
    assert_clean(out.err, "cxr stderr")
    # an unexpected error carrying pydicom's message goes to errors.log scrubbed
    log_unexpected(pydicom_error(path))
    text = error_log_path().read_text(encoding="utf-8")
    assert "BytesLengthException" in text and "Traceback" in text
    assert_clean(text, "errors.log")


def test_gui_log_and_errors_log_hold_no_name_or_id(qtbot, dicom_dir, tmp_path):
    from PySide6.QtCore import QSettings

    from app.__main__ import configure_logging
    from app.main_window import MainWindow
    from app.settings import Settings
    from app.workers import running_jobs
    from ml.logfile import error_log_path

    path = wrong_vr_file(dicom_dir, tmp_path / "wrong_vr.dcm")
    gui_log = io.StringIO()
    handlers = configure_logging(stream=gui_log)
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    window = MainWindow(Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(window)
    window.show()
    try:
        window.open_paths([path])
        qtbot.waitUntil(lambda: not window.indexer.busy and window.viewer.image() is not None, timeout=60_000)
        qtbot.waitUntil(lambda: window.tags.tree.topLevelItemCount() > 10, timeout=60_000)
        # what the GUI's exception hook does with an unexpected error on the GUI thread
        exc = pydicom_error(path)
        logging.getLogger("app").error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
        logging.getLogger("app").warning("while showing %s", str(exc))
        for handler in handlers:
            handler.flush()
        text = gui_log.getvalue()
        assert "BytesLengthException" in text and "Traceback" in text
        assert_clean(text, "the GUI log")
        errors = error_log_path().read_text(encoding="utf-8")
        assert "BytesLengthException" in errors
        assert_clean(errors, "errors.log")
    finally:
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
            handler.close()
        window.close()
        qtbot.waitUntil(lambda: running_jobs() == 0, timeout=60_000)
        sys.stderr.flush()
