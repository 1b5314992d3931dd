"""The training wizard (issue 4): fine-tune a model on local folders without writing code.

``install(main_window)`` adds "Train a model…" (Ctrl+T) and "Evaluate on my data…" to a "Training"
menu; ``open_wizard`` shows the wizard and ``open_site_dialog`` the site check/calibration dialog
(one of each per window, re-shown when already open). Importing this package imports
neither Qt nor torch (the presenters and the session are Qt-free); the wizard loads torch when it
needs it.
"""

from __future__ import annotations

from typing import Any


def open_wizard(main_window: Any = None) -> Any:
    """Show the training wizard of ``main_window`` (created on first use) and return it."""
    from app.training.link import WindowLink
    from app.training.wizard import TrainingWizard

    wizard = getattr(main_window, "training_wizard", None) if main_window is not None else None
    if wizard is None:
        link = WindowLink.of_window(main_window) if main_window is not None else None
        wizard = TrainingWizard(link, main_window)
        if main_window is not None:
            main_window.training_wizard = wizard
    wizard.show()
    wizard.raise_()
    wizard.activateWindow()
    return wizard


def open_site_dialog(main_window: Any = None) -> Any:
    """Show the "Evaluate on my data" dialog of ``main_window`` (created on first use) and return it."""
    from app.training.site_dialog import SiteDialog

    dialog = getattr(main_window, "site_dialog", None) if main_window is not None else None
    if dialog is None:
        use_version = None
        if main_window is not None:
            from app.training.link import WindowLink

            link = WindowLink.of_window(
                main_window
            )  # lists the new version in the analysis panel and chooses it
            use_version = link.model_saved
            main_window.site_dialog_link = link
        dialog = SiteDialog(main_window, use_version=use_version)
        if main_window is not None:
            main_window.site_dialog = dialog
    else:
        dialog.presenter.refresh_models()
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


def install(main_window: Any) -> Any:
    """Add the "Training" menu with "Train a model…" (Ctrl+T) and return its QAction; idempotent."""
    from PySide6.QtGui import QAction, QKeySequence
    from PySide6.QtWidgets import QMenu

    existing = getattr(main_window, "training_action", None)
    if existing is not None:
        return existing
    action = QAction("&Train a model…", main_window)
    action.setObjectName("training_wizard")
    action.setShortcut(QKeySequence("Ctrl+T"))
    action.setStatusTip("Fine-tune a classification model on your own labelled images")
    action.triggered.connect(lambda _checked=False: open_wizard(main_window))
    bar = main_window.menuBar()
    menu = QMenu("&Training", main_window)
    menu.setObjectName("trainingMenu")
    help_menu = next((a for a in bar.actions() if a.text().replace("&", "") == "Help"), None)
    if help_menu is not None:  # keep Help last
        bar.insertMenu(help_menu, menu)
    else:
        bar.addMenu(menu)
    menu.addAction(action)
    site = QAction("&Evaluate on my data…", main_window)
    site.setObjectName("site_evaluation")
    site.setStatusTip("Check and calibrate an installed model on your own labelled images (a new version)")
    site.triggered.connect(lambda _checked=False: open_site_dialog(main_window))
    menu.addAction(site)
    main_window.site_evaluation_action = site
    main_window.training_menu = menu
    main_window.training_action = action
    return action


__all__ = ["install", "open_site_dialog", "open_wizard"]
