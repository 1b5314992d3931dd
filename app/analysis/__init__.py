"""The AI analysis part of the window: panel (dock), Analysis menu, model library, reports.

``install(main_window)`` is the one call the main window makes (see :mod:`app.analysis.wiring`).
Importing this package imports neither Qt nor torch, so the Qt-free presenters
(:mod:`app.analysis.presenter`, :mod:`app.analysis.library_presenter`) and their tests need neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.analysis.panel import AnalysisPanel


def install(main_window: Any) -> AnalysisPanel:
    """Add the analysis dock, the Analysis menu entries and the status bar device label (once)."""
    from app.analysis.wiring import install as install_panel

    return install_panel(main_window)


def __getattr__(name: str) -> Any:
    if name == "AnalysisPanel":
        from app.analysis.panel import AnalysisPanel

        return AnalysisPanel
    raise AttributeError(f"module 'app.analysis' has no attribute {name!r}")


__all__ = ["AnalysisPanel", "install"]
