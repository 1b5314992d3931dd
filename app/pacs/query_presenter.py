"""The Query/Retrieve dock's presenter: search a node, list studies (series on demand), retrieve. Qt-free.

Rules: at least one search criterion; dates as YYYY-MM-DD or YYYYMMDD, a range that does not end
before it begins; a name without wildcard matches as a prefix ("Smith" finds "Smith^John"). The
retrieve methods are the node's (C-GET, C-MOVE when our receiver runs, WADO-RS). Retrieved studies
land in the user's cache (``ml.pacs.retrieve_cache``) and each complete study is opened in the
browser at once through ``open_folder``; a cancel or an error leaves nothing of the unfinished one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from app.analysis.state import JobHandle, JobRunner
from app.pacs import jobs
from app.pacs.session import PacsSession
from ml.pacs.service import METHOD_LABELS, Match, Query, retrieve_methods

_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")
_MODALITY = re.compile(r"^[A-Z0-9]{1,16}$")
EMPTY_CRITERIA = ("Enter at least one search criterion (patient ID, name, accession number, study date or "
                  "modality); a name of * lists every study.")


@dataclass(frozen=True)
class SearchForm:
    patient_id: str = ""
    patient_name: str = ""
    accession_number: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""


@dataclass(frozen=True)
class StudyRow:
    study_uid: str
    patient: str
    patient_id: str
    date: str
    modalities: str
    description: str
    accession: str
    instances: str


@dataclass(frozen=True)
class SeriesRow:
    series_uid: str
    number: str
    modality: str
    description: str
    instances: str


def _date(text: str, which: str) -> tuple[str, str]:
    """("YYYYMMDD", "") or ("", the problem)."""
    text = text.strip()
    if not text:
        return "", ""
    m = _DATE.match(text)
    if m is None:
        return "", f"The {which} date '{text}' is not a date (YYYY-MM-DD)."
    y, mo, d = map(int, m.groups())
    from datetime import date

    try:
        date(y, mo, d)
    except ValueError:
        return "", f"The {which} date '{text}' does not exist."
    return "".join(m.groups()), ""


def build_query(form: SearchForm) -> tuple[Query | None, list[str]]:
    """The study-level query for a form, or None and the problems."""
    problems = []
    start, p1 = _date(form.date_from, "first")
    end, p2 = _date(form.date_to, "last")
    problems += [p for p in (p1, p2) if p]
    if start and end and end < start:
        problems.append("The study date range ends before it begins.")
    modality = form.modality.strip().upper()
    if modality and not _MODALITY.match(modality):
        problems.append(f"'{form.modality.strip()}' is not a modality (letters and digits, e.g. CR or DX).")
    name = form.patient_name.strip()
    if name and not any(c in name for c in "*?"):
        name += "*"
    if not any((form.patient_id.strip(), name, form.accession_number.strip(), form.date_from.strip(),
                form.date_to.strip(), modality)):
        problems.append(EMPTY_CRITERIA)
    if problems:
        return None, problems
    dates = start if start and start == end else (f"{start}-{end}" if start or end else "")
    return Query(patient_id=form.patient_id.strip(), patient_name=name,
                 accession_number=form.accession_number.strip(), study_date=dates, modality=modality), []


def _person(name: str) -> str:
    """"Family^Given^Middle" -> "Family, Given Middle"."""
    parts = [p for p in name.split("^") if p]
    return parts[0] + (", " + " ".join(parts[1:]) if len(parts) > 1 else "") if parts else ""


def _day(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


def study_row(m: Match) -> StudyRow:
    return StudyRow(m.study_uid, _person(m.patient_name), m.patient_id, _day(m.study_date),
                    m.modalities.replace("\\", ", "), m.description, m.accession_number, m.n_instances)


def series_row(m: Match) -> SeriesRow:
    return SeriesRow(m.series_uid, m.series_number, m.modalities, m.description, m.n_instances)


class QueryView(Protocol):
    def show_nodes(self, names: list[str], selected: int) -> None: ...

    def show_methods(self, methods: list[tuple[str, str]], selected: int) -> None: ...  # (key, label)

    def show_studies(self, rows: list[StudyRow]) -> None: ...

    def show_series(self, study_uid: str, rows: list[SeriesRow] | None) -> None: ...  # None: loading

    def show_message(self, text: str, error: bool = False) -> None: ...

    def bind_progress(self, handle: Any, message: str) -> None: ...

    def set_enabled(self, search: bool, retrieve: bool) -> None: ...


class QueryPresenter:
    def __init__(self, view: QueryView, runner: JobRunner, session: PacsSession,
                 open_folder: Callable[[Path], Any], dest_root: Path | None = None) -> None:
        self.view, self.runner, self.session = view, runner, session
        self.open_folder, self.dest_root = open_folder, dest_root
        self.node_name = ""
        self.method = ""
        self.rows: list[StudyRow] = []
        self.series: dict[str, list[SeriesRow]] = {}
        self.search_job: JobHandle | None = None
        self.retrieve_job: JobHandle | None = None
        self.opened: list[Path] = []
        session.listeners.append(self.refresh_nodes)

    # -- nodes and methods -------------------------------------------------------------------------
    def refresh_nodes(self) -> None:
        names = list(self.session.nodes)
        if self.node_name not in names:
            self.node_name = names[0] if names else ""
        self.view.show_nodes(names, names.index(self.node_name) if self.node_name else -1)
        self._show_methods()
        if self.session.load_error:
            self.view.show_message(self.session.load_error, error=True)
        elif not names:
            self.view.show_message("No PACS node yet: add one in PACS > Nodes….")
        self._enable()

    def choose_node(self, name: str) -> None:
        if name in self.session.nodes and name != self.node_name:
            self.node_name, self.method = name, ""  # the new node's best method
            self.rows, self.series = [], {}
            self.view.show_studies([])
            self._show_methods()
            self._enable()

    def methods(self) -> list[str]:
        node = self.session.nodes.get(self.node_name)
        return retrieve_methods(node, self.session.receiver_running) if node is not None else []

    def _show_methods(self) -> None:
        methods = self.methods()
        if self.method not in methods:
            self.method = methods[0] if methods else ""
        self.view.show_methods([(m, METHOD_LABELS[m]) for m in methods],
                               methods.index(self.method) if self.method else -1)

    def choose_method(self, key: str) -> None:
        if key in self.methods():
            self.method = key

    def _enable(self) -> None:
        idle = self.retrieve_job is None
        node = self.node_name in self.session.nodes
        self.view.set_enabled(search=node and self.search_job is None,
                              retrieve=node and idle and bool(self.rows) and bool(self.method))

    # -- search ------------------------------------------------------------------------------------
    def search(self, form: SearchForm) -> bool:
        node = self.session.nodes.get(self.node_name)
        if self.search_job is not None:  # one search at a time (Enter in a field while one runs)
            return False
        if node is None:
            self.view.show_message("Choose a PACS node first (PACS > Nodes… adds one).", error=True)
            return False
        query, problems = build_query(form)
        if query is None:
            self.view.show_message(" ".join(problems), error=True)
            return False
        self.view.show_message(f"Searching {node.name}…")
        self.search_job = self.runner.start(partial(jobs.search, node, query, self.session.calling_aet),
                                            f"searching PACS node {node.name}", finished=self._found,
                                            error=lambda m: self.view.show_message(m, error=True),
                                            done=self._search_done)
        self.view.bind_progress(self.search_job, f"Searching {node.name}")
        self._enable()
        return True

    def _found(self, matches: list[Match]) -> None:
        self.rows = [study_row(m) for m in reversed(matches)]  # newest first
        self.series = {}
        self.view.show_studies(self.rows)
        n = len(self.rows)
        self.view.show_message(f"{n} stud{'y' if n == 1 else 'ies'} found." if n else "No study matches.")

    def _search_done(self) -> None:
        self.search_job = None
        self._enable()

    def expand(self, study_uid: str) -> None:
        """The series of a study (asked for once, when its row is first expanded)."""
        node = self.session.nodes.get(self.node_name)
        if node is None or study_uid in self.series:
            return
        self.series[study_uid] = []
        self.view.show_series(study_uid, None)
        query = Query(level="SERIES", study_uid=study_uid)

        def found(matches: list[Match]) -> None:
            self.series[study_uid] = [series_row(m) for m in matches]
            self.view.show_series(study_uid, self.series[study_uid])

        def failed(message: str) -> None:
            self.series.pop(study_uid, None)
            self.view.show_series(study_uid, [])
            self.view.show_message(message, error=True)

        self.runner.start(partial(jobs.search, node, query, self.session.calling_aet), "listing series",
                          finished=found, error=failed)

    # -- retrieve ----------------------------------------------------------------------------------
    def retrieve(self, study_uids: list[str]) -> bool:
        node = self.session.nodes.get(self.node_name)
        known = {r.study_uid for r in self.rows}
        uids = [u for u in dict.fromkeys(study_uids) if u in known]
        if node is None or not uids:
            self.view.show_message("Select one or more studies to retrieve.", error=True)
            return False
        if self.retrieve_job is not None or not self.method:
            return False
        self.opened = []
        receiver = self.session.receiver if self.method == "move" else None
        fn = partial(jobs.retrieve_studies, node, uids, self.method, self.session.calling_aet, receiver,
                     self.dest_root)
        label = METHOD_LABELS[self.method]
        self.retrieve_job = self.runner.start(fn, f"retrieving from {node.name}", partial=self._arrived,
                                              finished=lambda _r: self._retrieved(len(uids)),
                                              error=self._retrieve_failed, cancelled=self._retrieve_cancelled,
                                              done=self._retrieve_done)
        self.view.bind_progress(self.retrieve_job, f"Retrieving ({label})")
        self.view.show_message(f"Retrieving {len(uids)} stud{'y' if len(uids) == 1 else 'ies'} by {label}…")
        self._enable()
        return True

    def cancel(self) -> None:
        if self.retrieve_job is not None:
            self.retrieve_job.cancel()

    def _arrived(self, folder: Path) -> None:
        self.opened.append(Path(folder))
        self.open_folder(Path(folder))

    def _retrieved(self, count: int) -> None:
        self.view.show_message(f"Retrieved {count} stud{'y' if count == 1 else 'ies'} into the cache; "
                               "opened in the browser.")

    def _retrieve_failed(self, message: str) -> None:
        kept = f" ({len(self.opened)} complete stud{'y' if len(self.opened) == 1 else 'ies'} kept)" if self.opened else ""
        self.view.show_message(f"{message}{kept}", error=True)

    def _retrieve_cancelled(self) -> None:
        kept = f"; {len(self.opened)} complete stud{'y' if len(self.opened) == 1 else 'ies'} kept" if self.opened else ""
        self.view.show_message(f"Retrieve cancelled: nothing of the unfinished study was kept{kept}.")

    def _retrieve_done(self) -> None:
        self.retrieve_job = None
        self._enable()

    def shutdown(self) -> None:
        for job in (self.search_job, self.retrieve_job):
            if job is not None:
                job.cancel()
        if self.refresh_nodes in self.session.listeners:
            self.session.listeners.remove(self.refresh_nodes)
