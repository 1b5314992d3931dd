"""The model library dialog's presenter: installed models, the catalogue, import, download, remove.

Qt-free and torch-free. One operation (import, download, remove) runs at a time; its outcome
(installed, removed, a readable error, cancelled) becomes one message line. A file that is not
ours (a ``.pth``, a safetensors file without manifest) is imported after the view's form says what
it is (architecture, labels, task).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from app.analysis import jobs
from app.analysis.state import JobHandle, JobRunner

INSTALLED, CATALOGUE = 0, 1  # the dialog's tabs


class LibraryView(Protocol):
    def show_models(self, models: list[jobs.ModelInfo], selected: int) -> None: ...

    def show_card(self, model: jobs.ModelInfo | None) -> None: ...  # None: "no model installed"

    def show_entries(self, entries: list[Any] | None) -> None: ...  # None: still being read

    def show_tab(self, tab: int) -> None: ...

    def show_message(self, text: str) -> None: ...

    def show_error(self, message: str) -> None: ...  # the message line and a non-blocking box

    def show_busy(self, busy: bool) -> None: ...

    def show_progress(self, done: int, total: int, message: str) -> None: ...

    def set_enabled(self, import_: bool, remove: bool, download: bool) -> None: ...

    def ask_import_form(self, path: str, architectures: list[str]) -> None: ...  # -> form_accepted

    def library_changed(self) -> None: ...


@dataclass
class Operation:
    what: str
    handle: JobHandle | None = None


@dataclass
class LibraryState:
    models: list[jobs.ModelInfo] = field(default_factory=list)
    selected: str | None = None
    entries: list[Any] | None = None  # None while the catalogue is being read
    operation: Operation | None = None
    message: str = ""
    last_error: str = ""


class LibraryPresenter:
    def __init__(self, view: LibraryView, runner: JobRunner) -> None:
        self.view = view
        self.runner = runner
        self.state = LibraryState()

    def start(self) -> None:
        """List the installed models and read the catalogue (both in the background)."""
        self.view.show_entries(None)
        self.refresh()
        self.runner.start(jobs.load_catalogue, "reading the model catalogue", finished=self.catalogue_read,
                          error=self.fail)  # fmt: skip
        self.update_enabled()

    def refresh(self) -> None:
        self.runner.start(jobs.list_models, "listing installed models", finished=self.models_listed,
                          error=self.fail)  # fmt: skip

    # -- what is shown -----------------------------------------------------------------------------
    def models_listed(self, models: list[jobs.ModelInfo]) -> None:
        s = self.state
        s.models = list(models)
        names = [m.name for m in s.models]
        row = names.index(s.selected) if s.selected in names else 0
        s.selected = names[row] if names else None
        self.view.show_models(s.models, row if names else -1)
        self.view.show_card(s.models[row] if names else None)
        self.update_enabled()

    def model_chosen(self, row: int) -> None:
        s = self.state
        if 0 <= row < len(s.models):
            s.selected = s.models[row].name
            self.view.show_card(s.models[row])

    def selected_model(self) -> jobs.ModelInfo | None:
        return next((m for m in self.state.models if m.name == self.state.selected), None)

    def catalogue_read(self, entries: list[Any]) -> None:
        self.state.entries = list(entries)
        self.view.show_entries(self.state.entries)
        self.update_enabled()

    def update_enabled(self) -> None:
        s = self.state
        idle = s.operation is None
        self.view.set_enabled(idle, idle and bool(s.models), idle and bool(s.entries))

    def _message(self, text: str) -> None:
        self.state.message = text
        self.view.show_message(text)

    def fail(self, message: str) -> None:
        self.state.last_error = message
        self.state.message = message
        self.view.show_error(message)

    # -- operations --------------------------------------------------------------------------------
    def import_path(self, path: str, fields: dict[str, Any] | None = None) -> None:
        """Import ``path``: our .safetensors directly, anything else after the form (``fields``)."""
        name = Path(path).name
        if fields is not None:
            self._run(jobs.import_file(path, **fields), f"Importing {name}")
        else:
            self._run(jobs.inspect_file(path), f"Reading {name}", lambda result: self._inspected(path, result))

    def _inspected(self, path: str, result: tuple[bool, list[str]]) -> None:
        ours, architectures = result
        if ours:
            self.import_path(path, {})
        else:
            self.view.ask_import_form(path, architectures)

    def form_accepted(self, path: str, fields: dict[str, Any]) -> None:
        if not fields.get("labels"):
            self.fail("Name the labels of the model (in output order) to import it.")
            return
        self.import_path(path, fields)

    def download(self, name: str) -> None:
        self._run(jobs.download_model(name), f"Downloading {name}")

    def remove(self, name: str) -> None:
        self._run(jobs.remove_model(name), f"Removing {name}")

    def cancel(self) -> None:
        op = self.state.operation
        if op is not None and op.handle is not None:
            op.handle.cancel()

    def _run(self, fn: Any, what: str, finished: Callable[[Any], None] | None = None) -> None:
        s = self.state
        if s.operation is not None:
            self.fail("Wait for the current operation to finish (or cancel it).")
            return
        self._message(what + "…")
        s.last_error = ""
        op = Operation(what)
        s.operation = op
        then = finished or self._changed

        def on_finished(result: Any) -> None:
            if op is s.operation:
                s.operation = None  # over before what follows (an import after an inspection)
                self._idle()
                then(result)

        op.handle = self.runner.start(
            fn, what[0].lower() + what[1:], finished=on_finished,
            error=lambda m: self.fail(m) if op is s.operation else None,
            progress=lambda d, t, m: self.view.show_progress(d, t, m) if op is s.operation else None,
            cancelled=lambda: self._message("Cancelled.") if op is s.operation else None,
            done=lambda: self._done(op),
        )  # fmt: skip
        self.view.show_busy(True)
        self.update_enabled()

    def _done(self, op: Operation) -> None:
        if op is self.state.operation:
            self.state.operation = None
            self._idle()

    def _idle(self) -> None:
        if self.state.operation is None:
            self.view.show_busy(False)
            self.update_enabled()

    def _changed(self, result: Any) -> None:
        if isinstance(result, jobs.ModelInfo):
            self._message(f"'{result.name}' is installed.")
            self.state.selected = result.name
        elif isinstance(result, str):
            self._message(f"'{result}' was removed.")
        self.refresh()
        self.view.show_tab(INSTALLED)
        self.view.library_changed()


__all__ = ["CATALOGUE", "INSTALLED", "LibraryPresenter", "LibraryState", "LibraryView", "Operation"]
