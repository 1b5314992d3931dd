"""PACS in the window (issue 12): node and receiver settings dialog, Query/Retrieve dock, the
optional C-STORE receiver whose incoming studies open in the browser.

``install(main_window)`` adds the "PACS" menu ("Query/Retrieve…", "Nodes…"). Importing this package
imports neither Qt nor pydicom; the Qt-free presenters (:mod:`app.pacs.nodes_presenter`,
:mod:`app.pacs.query_presenter`, :mod:`app.pacs.session`, :mod:`app.pacs.jobs`) are tested without a
display. Not for diagnostic use.
"""

from __future__ import annotations

from typing import Any


def install(main_window: Any) -> Any:
    """The "PACS" menu of ``main_window`` and its controller (dock and dialog made on first use)."""
    from app.pacs.wiring import install as install_pacs

    return install_pacs(main_window)


__all__ = ["install"]
