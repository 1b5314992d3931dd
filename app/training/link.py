"""The wizard's one connection to the rest of the window: viewer, image loader and analysis panel.

:class:`WindowLink` implements :class:`app.training.evaluate_presenter.AnalysisLink` over the objects
it is given (built once by :func:`app.training.open_wizard`), so no page reaches into the main window.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject


class WindowLink(QObject):
    def __init__(
        self,
        open_paths: Callable[[list[str]], Any],
        viewer: Any = None,
        current_path: Callable[[], str | None] | None = None,
        panel: Callable[[], Any] | None = None,
        raise_panel: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.open_paths = open_paths
        self.viewer = viewer
        self.current_path = current_path or (lambda: None)
        self._panel = panel or (lambda: None)
        self.raise_panel = raise_panel or (lambda: None)
        self.pending: tuple[str, str] | None = None  # (absolute path, model name) to run once shown
        self._watching = False
        self._saved_name: str | None = None

    @classmethod
    def of_window(cls, window: Any) -> WindowLink:
        """The link of a :class:`app.main_window.MainWindow` (its analysis panel when installed)."""
        def raise_panel() -> None:
            dock = getattr(window, "analysis_dock", None)  # set by app.analysis.install, when installed
            if dock is not None:
                dock.raise_()

        return cls(
            open_paths=window.open_paths,
            viewer=window.viewer,
            current_path=lambda: window.loader.current_path,
            panel=lambda: getattr(window, "analysis_panel", None),
            raise_panel=raise_panel,
        )

    @property
    def panel(self) -> Any:
        """The analysis panel (None while it is not installed)."""
        return self._panel()

    # ------------------------------------------------------------------ AnalysisLink
    def open_image(self, path: str) -> bool:
        self.open_paths([path])
        return self.panel is not None

    def model_saved(self, name: str) -> bool:
        """List the new model in the analysis panel and choose it there once listed."""
        if self.panel is None:
            return False
        self._saved_name = name
        self.panel.modelsListed.connect(self._select_saved)
        self.panel.refresh_models()
        return True

    def _select_saved(self, _models: Any) -> None:
        try:
            self.panel.modelsListed.disconnect(self._select_saved)
        except (RuntimeError, TypeError):
            pass
        if self._saved_name:
            self.panel.select_model(self._saved_name)

    def predict_when_shown(self, path: str, model_name: str) -> None:
        if self.panel is None or self.viewer is None:
            return
        self.pending = (os.path.abspath(path), model_name)
        if not self._watching:
            self.viewer.imageChanged.connect(self._image_shown)
            self._watching = True

    def _image_shown(self, *_args: Any) -> None:
        current = self.current_path()
        if self.pending is None or not current or os.path.abspath(str(current)) != self.pending[0]:
            return
        _path, name = self.pending
        self.pending = None
        self.viewer.imageChanged.disconnect(self._image_shown)
        self._watching = False
        panel = self.panel
        if panel.current_model_name() != name:
            panel.select_model(name)
        panel.auto_explain.setChecked(True)
        panel.run_current()
        self.raise_panel()
