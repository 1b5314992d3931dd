"""The PACS presenters without a display: search rules, result rows, node editing rules, receiver."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from app.pacs.nodes_presenter import NodeForm, NodesPresenter
from app.pacs.query_presenter import EMPTY_CRITERIA, QueryPresenter, SearchForm, build_query, study_row
from app.pacs.session import PacsSession
from ml.pacs.nodes import Node, load_nodes, load_receiver, nodes_file, save_nodes
from ml.pacs.service import Match


class Recorder:
    """A view that remembers the last call of each method."""

    def __init__(self) -> None:
        self.calls: dict[str, tuple] = {}
        self.messages: list[tuple[str, bool]] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("show_") or name in ("bind_progress", "set_enabled"):
            def record(*args: Any, **kwargs: Any) -> None:
                self.calls[name] = args + tuple(kwargs.values())
                if name == "show_message":
                    self.messages.append((args[0], bool(args[1] if len(args) > 1 else kwargs.get("error", False))))
            return record
        raise AttributeError(name)


class FakeJob:
    def __init__(self, fn, description, callbacks) -> None:  # noqa: ANN001
        self.fn, self.description, self.callbacks = fn, description, callbacks
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def deliver(self, what: str, *args: Any) -> None:
        callback = self.callbacks.get(what)
        if callback is not None:
            callback(*args)
        if what in ("finished", "error", "cancelled") and self.callbacks.get("done"):
            self.callbacks["done"]()


class FakeRunner:
    def __init__(self) -> None:
        self.jobs: list[FakeJob] = []

    def start(self, fn, description, **callbacks) -> FakeJob:  # noqa: ANN001
        self.jobs.append(FakeJob(fn, description, callbacks))
        return self.jobs[-1]


# -- search rules -------------------------------------------------------------------------------------
def test_empty_criteria_are_refused():
    assert build_query(SearchForm()) == (None, [EMPTY_CRITERIA])
    assert build_query(SearchForm(patient_id="   ")) == (None, [EMPTY_CRITERIA])
    query, problems = build_query(SearchForm(patient_name="*"))
    assert problems == [] and query.patient_name == "*"


def test_date_range_order_and_format():
    query, _ = build_query(SearchForm(date_from="2004-01-01", date_to="20041231"))
    assert query.study_date == "20040101-20041231"
    assert build_query(SearchForm(date_from="2004-08-26", date_to="2004-08-26"))[0].study_date == "20040826"
    assert build_query(SearchForm(date_from="2004-08-26"))[0].study_date == "20040826-"
    assert build_query(SearchForm(date_to="2004-08-26"))[0].study_date == "-20040826"
    assert build_query(SearchForm(date_from="2005-01-01", date_to="2004-12-31")) == (
        None, ["The study date range ends before it begins."])
    assert build_query(SearchForm(date_from="2004-02-30"))[1] == ["The first date '2004-02-30' does not exist."]
    assert build_query(SearchForm(date_to="26.08.2004"))[1] == ["The last date '26.08.2004' is not a date (YYYY-MM-DD)."]


def test_name_prefix_and_modality():
    query, _ = build_query(SearchForm(patient_name="Smith", modality=" cr "))
    assert (query.patient_name, query.modality) == ("Smith*", "CR")
    assert build_query(SearchForm(patient_name="Sm?th"))[0].patient_name == "Sm?th"
    assert build_query(SearchForm(modality="C R"))[1] == ["'C R' is not a modality (letters and digits, e.g. CR or DX)."]


def test_result_rows_are_readable():
    m = Match("STUDY", "1.2.3", "PID7", "Doe^Jane^M", "20040826", "ACC9", "Chest PA", "CR\\DX", n_instances="3")
    row = study_row(m)
    assert (row.patient, row.date, row.modalities, row.instances) == ("Doe, Jane M", "2004-08-26", "CR, DX", "3")


# -- the query presenter ------------------------------------------------------------------------------
@pytest.fixture
def session() -> PacsSession:
    save_nodes({"web": Node("web", dicomweb_url="http://127.0.0.1:1/dicom-web"),
                "both": Node("both", "PACS", "127.0.0.1", 104, dicomweb_url="http://127.0.0.1:1/dicom-web")})
    return PacsSession()


def test_query_presenter_search_rows_and_retrieve(session):
    view, runner, opened = Recorder(), FakeRunner(), []
    p = QueryPresenter(view, runner, session, opened.append)
    p.refresh_nodes()
    assert view.calls["show_nodes"] == (["web", "both"], 0)
    assert view.calls["show_methods"] == ([("dicomweb", "WADO-RS")], 0)
    p.choose_node("both")
    assert view.calls["show_methods"] == ([("dimse", "C-GET"), ("dicomweb", "WADO-RS")], 0)  # no C-MOVE: receiver off
    assert not p.search(SearchForm())
    assert view.messages[-1] == (EMPTY_CRITERIA, True) and runner.jobs == []
    assert p.search(SearchForm(patient_id="PID7"))
    assert not p.search(SearchForm(patient_id="PID7")) and len(runner.jobs) == 1  # one at a time
    job = runner.jobs[-1]
    assert job.fn.args[1].patient_id == "PID7" and view.calls["set_enabled"] == (False, False)
    old = Match("STUDY", "1.1", "PID7", "Doe^Jane", "20010101", "", "", "CR")
    new = Match("STUDY", "1.2", "PID7", "Doe^Jane", "20040826", "", "", "CR")
    job.deliver("finished", [old, new])
    assert [r.study_uid for r in view.calls["show_studies"][0]] == ["1.2", "1.1"]  # newest first
    assert view.messages[-1] == ("2 studies found.", False) and view.calls["set_enabled"] == (True, True)
    assert not p.retrieve([])
    assert p.retrieve(["1.2", "9.9"])  # a UID not in the results is ignored
    job = runner.jobs[-1]
    assert job.fn.args[1] == ["1.2"] and job.fn.args[2] == "dimse"
    job.deliver("partial", Path("/cache/pacs/1.2"))
    assert opened == [Path("/cache/pacs/1.2")]
    job.deliver("finished", None)
    assert view.messages[-1][0].startswith("Retrieved 1 study")


def test_query_presenter_cancel_and_series(session):
    view, runner, opened = Recorder(), FakeRunner(), []
    p = QueryPresenter(view, runner, session, opened.append)
    p.refresh_nodes()
    p.search(SearchForm(patient_name="*"))
    runner.jobs[-1].deliver("finished", [Match("STUDY", "1.2", "P", "X", "20040826", "", "", "CR")])
    p.expand("1.2")
    assert view.calls["show_series"] == ("1.2", None)  # loading
    runner.jobs[-1].deliver("finished", [Match("SERIES", "1.2", "", "", "", "", "PA", "CR", "1.2.5", "1", "1")])
    assert view.calls["show_series"][1][0].series_uid == "1.2.5"
    p.expand("1.2")  # asked once only
    assert len(runner.jobs) == 2
    p.retrieve(["1.2"])
    p.cancel()
    assert runner.jobs[-1].cancelled
    runner.jobs[-1].deliver("cancelled")
    assert opened == [] and "nothing of the unfinished study was kept" in view.messages[-1][0]
    assert view.calls["set_enabled"] == (True, True)


# -- node editing rules -------------------------------------------------------------------------------
def test_node_editing_rules_and_save(tmp_path):
    session = PacsSession()
    view, runner = Recorder(), FakeRunner()
    p = NodesPresenter(view, runner, session)
    p.start()
    assert view.calls["show_nodes"] == ([], -1) and view.calls["show_receiver"][0].enabled is False
    p.add()
    p.add()
    assert view.calls["show_nodes"] == (["New node", "New node 2"], 1)
    assert "Give a DICOM address (AE title, host, port) or a DICOMweb URL, or both." in view.calls["show_problems"][0]
    for name, value in (("ae_title", "ORTHANC"), ("host", "127.0.0.1"), ("port", "4242x")):
        p.edit(name, value)
    assert view.calls["show_problems"][0][0] == "The DICOM port must be a number from 1 to 65535."
    assert view.calls["set_enabled"][2] is False  # save disabled
    p.edit("port", "4242")
    p.edit("name", "New node")
    assert "Two nodes are called 'New node': names must be unique." in view.calls["show_problems"][0]
    assert not p.save() and view.messages[-1][1] is True and not nodes_file().exists()
    p.edit("name", "Main PACS")
    p.edit("auth", "bearer")  # bearer without a DICOMweb URL and without a token
    assert view.calls["show_problems"][0] == ["Authentication applies to the DICOMweb URL: give the URL too.",
                                              "New node: Give a DICOM address (AE title, host, port) or a DICOMweb "
                                              "URL, or both."]  # the selected node first, then the others, named
    p.edit("dicomweb_url", "https://pacs.example.org/dicom-web/")
    p.edit("secret", "tok")
    p.select(0)
    p.remove()  # the empty "New node"
    assert view.calls["show_nodes"] == (["Main PACS"], 0) and view.calls["show_problems"] == ([],)
    p.edit_receiver("enabled", True)
    p.edit_receiver("port", "0")
    assert view.calls["show_problems"][0] == ["Receiver: the listening port must be a number from 1 to 65535."]
    p.edit_receiver("enabled", False)
    assert p.save()
    saved = load_nodes()
    assert saved["Main PACS"] == Node("Main PACS", "ORTHANC", "127.0.0.1", 4242,
                                      dicomweb_url="https://pacs.example.org/dicom-web", auth="bearer", password="tok")
    assert stat.S_IMODE(os.stat(nodes_file()).st_mode) == 0o600
    assert load_receiver().enabled is False


def test_node_test_button_runs_in_the_background():
    session = PacsSession()
    view, runner = Recorder(), FakeRunner()
    p = NodesPresenter(view, runner, session)
    p.start()
    p.add()
    p.test()  # invalid: no job
    assert runner.jobs == [] and view.messages[-1][0].startswith("Cannot test:")
    p.edit("dicomweb_url", "http://127.0.0.1:1/dicom-web")
    p.test()
    job = runner.jobs[-1]
    assert job.fn.args[0].dicomweb_url == "http://127.0.0.1:1/dicom-web" and view.calls["bind_progress"][0] is job
    assert view.calls["set_enabled"][1] is False  # one test at a time
    job.deliver("finished", ["QIDO-RS: OK (3 ms)"])
    assert view.messages[-1] == ("QIDO-RS: OK (3 ms)", False) and view.calls["set_enabled"][1] is True


def test_node_form_keeps_the_secret_only_for_its_auth_kind():
    form = NodeForm(name="n", dicomweb_url="https://h/x", auth="none", username="u", secret="s")
    assert (form.node().username, form.node().password) == ("", "")
    assert NodeForm.of(Node("n", dicomweb_url="https://h/x", auth="basic", username="u", password="p")).secret == "p"


def test_a_broken_node_file_is_one_readable_message():
    nodes_file().parent.mkdir(parents=True, exist_ok=True)
    nodes_file().write_text("{not json", encoding="utf-8")
    view = Recorder()
    QueryPresenter(view, FakeRunner(), PacsSession(), lambda _p: None).refresh_nodes()
    assert view.messages[-1][1] is True and "cannot be read" in view.messages[-1][0]
    assert view.calls["show_nodes"] == ([], -1)
