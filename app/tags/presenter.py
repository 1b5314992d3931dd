"""The tag panel's state and rules, Qt-free: which rows it holds, the search text, which rows
the search shows and expands, and the summary line. Tested over a mock view without a display.

The view is told:

    view.show_rows(rows)          rebuild the tree from :class:`app.tags.rows.TagRow` s
    view.apply_filter(flags)      one (visible, expand) pair per row, depth first, as show_rows
                                  listed them (expand: open it so its matching children show)
    view.set_summary(text)

Search rule: a row matches when the text occurs in its tag ("(0028,0030)" or "00280030"),
name, keyword, VR or value (case-insensitive). Ancestors of a match stay visible (and open);
every descendant of a matching row stays visible too.
"""

from __future__ import annotations

from typing import Protocol

from app.tags.rows import TagRow, count_rows


class TagView(Protocol):
    def show_rows(self, rows: list[TagRow]) -> None: ...
    def apply_filter(self, flags: list[tuple[bool, bool]]) -> None: ...
    def set_summary(self, text: str) -> None: ...


def filter_flags(rows: list[TagRow], needle: str) -> tuple[int, list[tuple[bool, bool]]]:
    """(number of rows shown as matches or context, (visible, expand) per row depth first)."""
    flags: list[tuple[bool, bool]] = []

    def visit(row: TagRow, parent_matches: bool) -> int:
        slot = len(flags)
        flags.append((True, False))
        matches = not needle or parent_matches or needle in row.search_text
        shown_children = sum(visit(child, matches and bool(needle)) for child in row.children)
        visible = matches or shown_children > 0
        flags[slot] = (visible, bool(needle and shown_children and not parent_matches))
        return (1 if visible and (matches or not needle) else 0) + shown_children

    shown = sum(visit(row, False) for row in rows)
    return shown, flags


class TagPresenter:
    def __init__(self, view: TagView):
        self.view = view
        self.rows: list[TagRow] = []
        self.n_rows = 0
        self.query = ""
        self.summary = "No image selected"
        self.flags: list[tuple[bool, bool]] = []
        self.note = ""

    def clear(self, message: str = "No image selected") -> None:
        self.rows, self.n_rows, self.flags, self.note = [], 0, [], ""
        self.view.show_rows([])
        self._summary(message)

    def set_no_header(self, title: str = "") -> None:
        """A non-DICOM image (or nothing): an explanatory line instead of rows."""
        self.clear(f"{title}: no DICOM header (PNG/JPEG file)" if title else "No DICOM header")

    def set_rows(self, rows: list[TagRow], note: str = "") -> None:
        """Show ``rows``; ``note`` (e.g. "x.dcm: could not be decoded") leads the summary line."""
        self.rows = rows
        self.note = note
        self.n_rows = count_rows(rows)
        self.view.show_rows(rows)
        self._filter()

    def set_filter(self, text: str) -> None:
        self.query = text
        self._filter()

    def _filter(self) -> None:
        needle = self.query.strip().lower()
        shown, self.flags = filter_flags(self.rows, needle)
        self.view.apply_filter(self.flags)
        if not needle:
            text = f"{self.n_rows} elements" if self.n_rows else self.summary
        else:
            text = f"{shown} of {self.n_rows} elements match “{self.query.strip()}”"
        self._summary(f"{self.note} · {text}" if self.note and self.n_rows else text)

    def _summary(self, text: str) -> None:
        self.summary = text
        self.view.set_summary(text)

    def visible_rows(self) -> list[tuple[str, str, str]]:
        """(tag, name, value) of every row the filter shows, depth first."""
        out: list[tuple[str, str, str]] = []
        flags = iter(self.flags)

        def walk(row: TagRow, parent_visible: bool) -> None:
            visible = next(flags)[0] and parent_visible
            if visible:
                out.append((row.tag, row.name, row.value))
            for child in row.children:
                walk(child, visible)

        for row in self.rows:
            walk(row, True)
        return out
