"""Start CXR Studio: ``python -m app [PATH ...]`` or ``cxr-studio [PATH ...]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.settings import APPLICATION, ORGANISATION

CLI_COMMANDS = ("info", "render", "models", "predict", "train", "evaluate")


def resource_path(name: str) -> Path:
    """A file under resources/, also inside a PyInstaller bundle (sys._MEIPASS)."""
    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent.parent))
    return base / "resources" / name


def load_style_sheet() -> str:
    path = resource_path("style.qss")
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Our options and paths (Qt's own options, such as -platform, are removed by QApplication)."""
    parser = argparse.ArgumentParser(
        prog="cxr-studio",
        description="CXR Studio: chest X-ray viewer and AI reading aid. Not for diagnostic use.",
    )
    parser.add_argument("paths", nargs="*", help="DICOM/PNG/JPEG files, folders, ZIP archives or DICOMDIRs to open")
    parser.add_argument("--settings", metavar="FILE.ini", help="keep settings in this INI file instead of the user profile")
    parser.add_argument("--verbose", action="store_true", help="log debugging details to stderr")
    return parser.parse_args(list(argv))


def create_application(argv: Sequence[str]) -> tuple[QApplication, list[str]]:
    """The QApplication with name, organisation and style sheet set (reuses a running one),
    and the arguments Qt left for us."""
    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "cxr-studio", *argv])
        remaining = list(app.arguments()[1:])
    else:
        remaining = list(argv)
    app.setApplicationName(APPLICATION)
    app.setOrganizationName(ORGANISATION)
    app.setApplicationDisplayName(APPLICATION)
    app.setStyle("Fusion")
    app.setStyleSheet(load_style_sheet())
    return app, remaining


def configure_logging(verbose: bool = False, stream: TextIO | None = None) -> list[logging.Handler]:
    """The GUI log (stderr, or ``stream``) and errors.log (errors with their tracebacks); every
    record is scrubbed of patient names and IDs first (ml.scrub). Returns the handlers added."""
    from ml.logfile import install_error_log

    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    error_log = install_error_log()
    return [handler] if error_log is None else [handler, error_log]


def is_cli(argv: Sequence[str]) -> bool:
    """``cxr-studio train ...``: a ``cxr`` subcommand, not a file to open."""
    return bool(argv) and argv[0] in CLI_COMMANDS and not Path(argv[0]).exists()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if is_cli(argv):
        # `cxr-studio train --config ...`: the frozen app is also the `cxr` tool (the training
        # wizard starts training this way), without creating a window.
        from ml.cli import main as cli_main

        return cli_main(argv)
    if "-h" in argv or "--help" in argv:
        parse_args(argv)  # prints the help and exits, without needing a display
    app, remaining = create_application(argv)
    args = parse_args(remaining)
    handlers = configure_logging(args.verbose)

    import warnings

    from ml.imaging.pydicom_logs import quiet_pydicom

    # pydicom logs every non-conformant value, which can include patient names: keep them out
    # (a filter on our handlers: pydicom itself is imported with the first file, after the window)
    quiet_pydicom(logging.ERROR, handlers)
    warnings.filterwarnings("ignore", module="pydicom")

    from app.dialogs import install_exception_hook
    from app.main_window import MainWindow
    from app.settings import Settings

    window = MainWindow(Settings(args.settings) if args.settings else None, defer_panels=True)
    previous_hook = sys.excepthook
    install_exception_hook(window)
    window.show()

    def finish_start_up() -> None:  # once the window is on screen
        window.install_panels()
        if args.paths:
            window.open_paths(args.paths)

    QTimer.singleShot(0, finish_start_up)
    try:
        return int(app.exec())
    finally:
        from app.workers import shutdown_jobs

        shutdown_jobs()  # background decoding/indexing/model jobs end before the interpreter does
        from app.browser.loader import close_shared_reader

        close_shared_reader()  # the decode worker process
        window.settings.qsettings.sync()  # everything the session changed is on disk now
        sys.excepthook = previous_hook


def exit_now(code: int) -> NoReturn:
    """Leave the process at once. Every file is already written (atomically) and the settings are
    synced; what remains is the interpreter's teardown of torch, ONNX Runtime and Qt, which takes
    about a second and made Ctrl+Q feel slow."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def run() -> NoReturn:
    """The ``cxr-studio`` entry point: the window (then a fast exit), or a ``cxr`` subcommand."""
    argv = sys.argv[1:]
    if is_cli(argv):
        sys.exit(main(argv))  # a command-line run ends the ordinary way
    exit_now(main(argv))


if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()  # frozen app on Windows/macOS: data-loader workers re-run this executable
    run()
