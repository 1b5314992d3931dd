"""Small dialogs: non-blocking messages, the keyboard-shortcut list, About."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLineEdit,
    QMessageBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

NOT_FOR_DIAGNOSTIC_USE = "Not for diagnostic use"


def show_message(
    parent: QWidget | None,
    title: str,
    text: str,
    details: str = "",
    icon: QMessageBox.Icon = QMessageBox.Icon.Warning,
) -> QMessageBox:
    """A non-blocking message box (the GUI keeps running behind it). Returns the box."""
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("notice")
    if details:  # a no-break space keeps each bullet with its first word when a long name wraps
        box.setInformativeText(details.replace("• ", "•\u00a0"))
    box.setWindowModality(Qt.WindowModality.NonModal)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.show()
    return box


def install_exception_hook(parent: QWidget | None) -> None:
    """Unexpected errors on the GUI thread (in a slot, an event handler): log the traceback and
    say "Something went wrong" in a non-blocking box; the application keeps running."""
    import logging
    import sys

    log = logging.getLogger("app")
    busy = False

    def hook(exc_type, exc, tb) -> None:
        nonlocal busy
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        log.error("unexpected error", exc_info=(exc_type, exc, tb))
        if busy:
            return
        busy = True
        try:
            show_message(parent, "CXR Studio", "Something went wrong.",
                         f"An unexpected {exc_type.__name__} happened; the details are in the log. "
                         "The application keeps running.", QMessageBox.Icon.Critical)
        except Exception:  # noqa: BLE001 - a broken hook must not hide the original error
            pass
        finally:
            busy = False

    sys.excepthook = hook


def format_problems(problems: Sequence[tuple[str, str]], limit: int = 12) -> str:
    """One line per file and why; long lists are cut with a count."""
    lines = [f"• {message}" for _path, message in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"… and {len(problems) - limit} more.")
    return "\n".join(lines)


def _shortcut_text(action: QAction) -> str:
    keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()]
    return ", ".join(k for k in keys if k)


def _plain(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip(".…").strip()


class ShortcutsDialog(QDialog):
    """Help > Keyboard shortcuts: built from the actions themselves, so it is never out of date."""

    def __init__(self, groups: Iterable[tuple[str, Iterable[QAction]]], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(640, 600)
        self.filter = QLineEdit(placeholderText="Search shortcuts…")
        self.filter.setClearButtonEnabled(True)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Command", "Shortcut"])
        self.tree.setRootIsDecorated(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        seen: set[int] = set()
        for group, actions in groups:
            header: QTreeWidgetItem | None = None
            for action in actions:
                keys = _shortcut_text(action)
                if not keys or id(action) in seen or action.isSeparator():
                    continue
                seen.add(id(action))
                if header is None:
                    header = QTreeWidgetItem(self.tree, [group, ""])
                    font = header.font(0)
                    font.setBold(True)
                    header.setFont(0, font)
                    header.setFirstColumnSpanned(True)
                QTreeWidgetItem(self.tree, [f"    {_plain(action.text())}", keys])
        self.filter.textChanged.connect(self._apply_filter)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)
        layout.addWidget(buttons)

    def entries(self) -> list[tuple[str, str]]:
        """(command, shortcut) pairs listed, without group headers."""
        out = []
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.text(1):
                out.append((item.text(0).strip(), item.text(1)))
        return out

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if not item.text(1):
                item.setHidden(bool(needle))
                continue
            hay = f"{item.text(0)} {item.text(1)}".lower()
            item.setHidden(bool(needle) and needle not in hay)


def about_text() -> str:
    from importlib import metadata  # ~40 ms (email, csv, zip parsing): only when About is opened

    try:
        version = metadata.version("cxr-studio")
    except metadata.PackageNotFoundError:
        version = ""
    return (
        f"<h3>CXR Studio {version}</h3>"
        "<p>A chest X-ray viewer with AI classification, heatmaps and a training wizard.</p>"
        f"<p><b>{NOT_FOR_DIAGNOSTIC_USE}.</b> CXR Studio is a reading aid and a research tool; "
        "it does not make a diagnosis.</p>"
        "<p>Built on PySide6, pyqtgraph, pydicom, PyTorch and Captum.</p>"
    )


def show_about(parent: QWidget | None) -> QMessageBox:
    box = QMessageBox(parent)
    box.setWindowTitle("About CXR Studio")
    box.setIcon(QMessageBox.Icon.Information)
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(about_text())
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.show()
    return box


__all__ = ["NOT_FOR_DIAGNOSTIC_USE", "ShortcutsDialog", "format_problems", "show_about", "show_message"]
