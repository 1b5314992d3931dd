"""The analysis panel's and model library's presenters over a fake view, a fake job runner and fake
images: no display, no Qt, no torch (checked in a fresh interpreter that has both blocked).

The fake runner never runs a job: the test decides when (and how) each one ends, so the orders a
real thread pool produces only sometimes (a load finishing after another model was chosen, a
result arriving after the image changed) are played out exactly.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.analysis.display import intended_use, validation_summary
from app.analysis.jobs import LoadedModel, ModelInfo
from app.analysis.library_presenter import CATALOGUE, INSTALLED, LibraryPresenter
from app.analysis.presenter import AnalysisPresenter
from app.analysis.state import EMPTY, READY, Enabled, ExplainRequest
from ml.errors import CxrError
from ml.inference.batch import BatchOutcome, FileResult

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- fakes


class FakeJob:
    def __init__(self, fn: Any, description: str, callbacks: dict[str, Any]) -> None:
        self.fn, self.description, self.callbacks = fn, description, callbacks
        self.cancelled = False
        self.ended = False

    def cancel(self) -> None:
        self.cancelled = True

    def _call(self, name: str, *args: Any) -> None:
        slot = self.callbacks.get(name)
        if slot is not None:
            slot(*args)

    def finish(self, result: Any) -> None:
        self._call("finished", result)
        self._end()

    def fail(self, message: str) -> None:
        self._call("error", message)
        self._end()

    def stop(self) -> None:  # the function saw the cancel request
        self._call("cancelled")
        self._end()

    def _end(self) -> None:
        self.ended = True
        self._call("done")


class FakeRunner:
    def __init__(self) -> None:
        self.jobs: list[FakeJob] = []

    def start(self, fn: Any, description: str, **callbacks: Any) -> FakeJob:
        job = FakeJob(fn, description, callbacks)
        self.jobs.append(job)
        return job

    def started(self, prefix: str) -> list[FakeJob]:
        return [j for j in self.jobs if j.description.startswith(prefix)]

    def last(self, prefix: str) -> FakeJob:
        found = self.started(prefix)
        assert found, f"no job {prefix!r} among {[j.description for j in self.jobs]}"
        return found[-1]


class FakeView:
    def __init__(self) -> None:
        self.page: int | None = None
        self.models: list[tuple[str, str]] = []
        self.selected: str | None = None
        self.model_shown: Any = None
        self.device = ""
        self.status = ""
        self.device_status = ""
        self.busy = (False, False)
        self.progress: tuple[int, int, str] | None = None
        self.prediction: Any = None
        self.batch: list[Any] | None = None
        self.heatmap: Any = None
        self.enabled = Enabled()
        self.errors: list[str] = []
        self.events: list[tuple[str, Any]] = []
        self.request = ExplainRequest()
        self.scope: tuple[str, bool] = ("", False)
        self.evidence: Any = None  # EvidenceShown

    def show_page(self, page: int) -> None:
        self.page = page

    def show_models(self, items: list[tuple[str, str]], selected: str | None) -> None:
        self.models, self.selected = items, selected

    def show_model(self, info: ModelInfo) -> None:
        self.model_shown = info

    def show_device(self, device: str) -> None:
        self.device = device

    def show_status(self, text: str) -> None:
        self.status = text

    def show_device_status(self, text: str) -> None:
        self.device_status = text

    def show_busy(self, busy: bool, cancellable: bool) -> None:
        self.busy = (busy, cancellable)

    def show_progress(self, done: int, total: int, message: str) -> None:
        self.progress = (done, total, message)

    def show_prediction(self, prediction: Any) -> None:
        self.prediction = prediction

    def show_scope(self, text: str, hidden: bool) -> None:
        self.scope = (text, hidden)

    def show_batch(self, predictions: list[Any] | None) -> None:
        self.batch = predictions

    def show_heatmap(self, heatmap: Any) -> None:
        self.heatmap = heatmap

    def show_evidence(self, shown: Any) -> None:
        self.evidence = shown

    def set_enabled(self, enabled: Enabled) -> None:
        self.enabled = enabled

    def show_error(self, message: str) -> None:
        self.status = message
        self.errors.append(message)

    def heatmap_request(self) -> ExplainRequest:
        return self.request

    def announce(self, event: str, payload: Any) -> None:
        self.events.append((event, payload))


@dataclass
class FakeImage:
    path: str

    @property
    def meta(self) -> Any:
        return SimpleNamespace(path=Path(self.path), inverted=False)


class FakeImages:
    def __init__(self) -> None:
        self.image: FakeImage | None = None
        self.frame = 0
        self.open_paths: list[str] = []  # what show_path can show
        self.shown: list[str] = []

    def current(self) -> tuple[Any, int] | None:
        return (self.image, self.frame) if self.image is not None else None

    def series_paths(self) -> list[str]:
        return [self.image.path] if self.image is not None else []

    def study_paths(self) -> list[str]:
        return list(self.open_paths)

    def study_count(self) -> int:
        return len(self.open_paths)

    def show_path(self, path: str) -> bool:
        if path not in self.open_paths:
            return False
        self.shown.append(path)
        self.image, self.frame = FakeImage(path), 0
        return True


class FakeSettings:
    def __init__(self, **values: str) -> None:
        self.values = dict(values)

    def value(self, key: str, default: str) -> str:
        return self.values.get(key, default)

    def set_value(self, key: str, value: str) -> None:
        self.values[key] = value


@dataclass
class Prediction:
    path: str
    frame: int = 0
    model_name: str = "a"
    top_label: str = "Normal"
    positives: list[str] = field(default_factory=lambda: ["Normal"])
    task: str = "multiclass"
    in_scope: bool = True
    scope_note: str = ""
    labels: list[str] = field(default_factory=lambda: ["Normal", "Pneumonia"])
    probabilities: list[float] = field(default_factory=lambda: [0.8, 0.2])


@dataclass
class Heatmap:
    method: str = "gradcam"
    target_label: str = "Normal"
    complete: bool = True
    values: Any = field(default_factory=lambda: SimpleNamespace(size=4, max=lambda: 0.8))


def batch(predictions: list[Prediction]) -> BatchOutcome:
    """What ml.inference.batch.classify_paths returns: one file result per prediction here."""
    results = [FileResult(p.path, p.path, [p]) for p in predictions]
    return BatchOutcome(results, labels=["Normal", "Pneumonia"], model_name="a")


def manifest(name: str) -> Any:
    return SimpleNamespace(name=name, version="1.0", labels=["Normal", "Pneumonia"], hidden_labels=[],
                           input_size=64)  # fmt: skip


def info(name: str, default: bool = False) -> ModelInfo:
    return ModelInfo(name, Path(f"/models/{name}.safetensors"), manifest(name), None, default)


def loaded(name: str, device: str = "CPU") -> LoadedModel:
    return LoadedModel(Path(f"/models/{name}.safetensors"), manifest(name), predictor=None, device_label=device)


@dataclass
class Rig:
    presenter: AnalysisPresenter
    view: FakeView
    runner: FakeRunner
    images: FakeImages
    settings: FakeSettings

    @property
    def state(self) -> Any:
        return self.presenter.state


def rig(*models: ModelInfo, image: str | None = "/data/a.dcm", **settings: str) -> Rig:
    view, runner, images, store = FakeView(), FakeRunner(), FakeImages(), FakeSettings(**settings)
    if image is not None:
        images.image = FakeImage(image)
        images.open_paths = [image]
    presenter = AnalysisPresenter(view, images, runner, store)
    r = Rig(presenter, view, runner, images, store)
    if models:
        presenter.models_listed(list(models))
    return r


def ready(*names: str, **kw: Any) -> Rig:
    """Models listed, the first one loaded."""
    r = rig(*(info(n) for n in names), **kw)
    r.runner.last("loading").finish(loaded(names[0]))
    return r


# ---------------------------------------------------------------------------- no Qt, no torch


def test_presenters_import_and_run_with_qt_and_torch_blocked() -> None:
    code = textwrap.dedent(
        """
        import sys
        for name in ("torch", "torchvision", "PySide6", "pyqtgraph", "captum"):
            sys.modules[name] = None  # any import of them raises ImportError
        sys.path.insert(0, "tests")
        import test_analysis_presenter as t
        t.test_a_run_asked_for_while_the_model_loads_starts_when_it_is_ready()
        t.test_library_imports_our_file_directly_and_asks_about_a_foreign_one()
        import test_analysis_heatmap_evidence as e  # issue 14: the gate is torch-free too
        e.test_a_heatmap_below_the_operating_point_is_hidden_until_shown_anyway()
        print("LOADED", sorted(m for m in ("torch", "PySide6", "pyqtgraph") if sys.modules.get(m)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "LOADED []" in out.stdout, out.stdout + out.stderr


# ---------------------------------------------------------------------------- models and loading


def test_listing_chooses_the_default_model_and_loads_it_on_the_saved_device() -> None:
    r = rig(info("a"), info("b", default=True), **{"analysis/device": "cpu"})
    assert r.view.page == READY
    assert r.view.selected == "b" and [n for n, _t in r.view.models] == ["a", "b"]
    load = r.runner.last("loading")
    assert load.description == "loading b"
    assert r.view.device_status == "Loading b…"
    assert r.view.busy == (True, False)  # busy, nothing to cancel yet
    assert r.state.device == "cpu"
    load.finish(loaded("b"))
    assert r.state.loaded.manifest.name == "b" and r.state.loaded_device == "cpu"
    assert r.view.busy == (False, False)  # the bar stops once the model is ready
    assert r.view.device_status == "Model: b · CPU"
    assert ("model_loaded", r.state.loaded) in r.view.events


def test_no_model_installed_offers_the_library() -> None:
    r = rig(info("broken").__class__("broken", Path("/x"), None, "damaged"))
    assert r.view.page == EMPTY and r.state.selected is None
    assert not r.runner.started("loading")
    r.presenter.run_image()
    assert r.view.errors[-1].startswith("Choose a model first")


def test_a_stale_load_is_ignored() -> None:
    r = rig(info("a"), info("b"))
    first = r.runner.last("loading")
    assert r.presenter.select_model("b")
    second = r.runner.last("loading")
    assert second is not first and first.cancelled  # the stale load is asked to stop
    first.finish(loaded("a"))  # it finished anyway: ignored
    assert r.state.loaded is None and r.view.device_status == "Loading b…"
    second.finish(loaded("b"))
    assert r.state.loaded.manifest.name == "b"
    # the same for a device switch while loading
    r.presenter.select_device("cuda")
    on_cuda = r.runner.last("loading")
    r.presenter.select_device("cpu")
    on_cpu = r.runner.last("loading")
    on_cuda.finish(loaded("b", "CUDA GPU"))
    assert r.state.loaded is None
    on_cpu.finish(loaded("b", "CPU"))
    assert r.state.loaded_device == "cpu" and r.settings.values["analysis/device"] == "cpu"
    # a failed stale load says nothing either
    assert r.presenter.select_model("a")
    stale = r.runner.last("loading")
    r.presenter.select_model("b")
    stale.fail("Out of memory")
    assert not r.view.errors


def test_choosing_what_is_loaded_again_loads_nothing() -> None:
    r = ready("a", "b")
    n = len(r.runner.jobs)
    assert r.presenter.select_model("a")
    r.presenter.select_device("auto")
    assert len(r.runner.jobs) == n
    assert not r.presenter.select_model("not-installed")


def test_a_run_asked_for_while_the_model_loads_starts_when_it_is_ready() -> None:
    r = rig(info("a"))
    load = r.runner.last("loading")
    assert r.view.enabled.run_image  # runs may be asked for while loading: they wait
    r.presenter.run_image()
    assert not r.runner.started("classifying")
    assert "loading" in r.view.status and r.view.busy == (True, True)  # the waiting run can be cancelled
    load.finish(loaded("a"))
    run = r.runner.last("classifying the image")
    assert r.state.busy and not r.view.enabled.run_image
    run.finish([Prediction("/data/a.dcm")])
    assert r.view.prediction.path == "/data/a.dcm"
    explain = r.runner.last("computing the Grad-CAM")  # then Grad-CAM, automatically
    heatmap = Heatmap()
    explain.finish(heatmap)
    assert r.view.heatmap is heatmap and r.state.last_outcome == "finished"
    assert "where the model looked" in r.view.status


def test_a_failed_load_drops_the_waiting_runs() -> None:
    r = rig(info("a"))
    r.presenter.run_image()
    r.runner.last("loading").fail("Not enough memory to load the model.")
    assert r.view.errors == ["Not enough memory to load the model."]
    assert not r.runner.started("classifying") and not r.state.queued
    assert r.view.busy == (False, False)


def test_cancel_drops_a_run_waiting_for_the_model() -> None:
    r = rig(info("a"))
    r.presenter.run_image()
    r.presenter.cancel()
    r.runner.last("loading").finish(loaded("a"))
    assert not r.runner.started("classifying")


# ---------------------------------------------------------------------------- switching mid-run


def test_switching_the_model_mid_run_stops_the_run_and_ignores_its_result() -> None:
    r = ready("a", "b")
    r.presenter.run_image()
    run = r.runner.last("classifying")
    r.presenter.select_model("b")
    assert run.cancelled and not r.state.busy
    assert "another model" in r.view.status
    load_b = r.runner.last("loading")
    assert load_b.description == "loading b"
    run.finish([Prediction("/data/a.dcm", model_name="a")])  # too late: ignored
    assert r.view.prediction is None and r.state.results == {}
    load_b.finish(loaded("b"))
    r.presenter.run_image()
    r.runner.last("classifying").finish([Prediction("/data/a.dcm", model_name="b")])
    assert r.view.prediction.model_name == "b"


def test_switching_the_device_mid_run_lets_the_run_finish() -> None:
    r = ready("a")
    r.presenter.run_image()
    run = r.runner.last("classifying")
    r.presenter.select_device("cpu")
    load = r.runner.last("loading")
    assert not run.cancelled and r.state.busy
    run.finish([Prediction("/data/a.dcm")])  # same model: its result stands
    assert r.view.prediction.path == "/data/a.dcm"
    load.finish(loaded("a"))
    assert r.state.loaded_device == "cpu"
    # the automatic Grad-CAM waited for the load, and runs on the new device
    assert r.runner.last("computing").description == "computing the Grad-CAM heatmap"


def test_one_run_at_a_time_and_cancel() -> None:
    r = ready("a")
    r.view.request = ExplainRequest("occlusion", "Pneumonia", {"window": 8, "stride": 4})
    r.presenter.explain()
    job = r.runner.last("computing the Occlusion")
    r.presenter.run_image()
    assert "Another analysis is running" in r.view.errors[-1]
    partial = Heatmap("occlusion", "Pneumonia", complete=False)
    job.callbacks["partial"](partial)
    assert r.view.heatmap is partial
    r.presenter.cancel()
    assert job.cancelled and r.view.status == "Cancelling…"
    job.stop()
    assert r.state.last_outcome == "cancelled" and "partial heatmap stays shown" in r.view.status
    assert not r.state.busy and r.view.enabled.run_image


# ---------------------------------------------------------------------------- results belong to their image


def test_the_table_shows_the_result_of_the_image_shown_or_nothing() -> None:
    """Issue 10 item 3 (the panel test ``test_results_follow_the_image_shown`` runs it for real)."""
    r = ready("a", image="/data/a.dcm")
    r.images.open_paths = ["/data/a.dcm", "/data/b.dcm"]
    r.presenter.set_auto_explain(False)
    r.presenter.run_image()
    r.runner.last("classifying").finish([Prediction("/data/a.dcm")])
    r.presenter.run_all()
    r.runner.last("classifying every").finish(batch([Prediction("/data/a.dcm")]))
    assert r.view.prediction.path == "/data/a.dcm" and r.view.enabled.pdf
    r.images.image = FakeImage("/data/b.dcm")  # another image, never classified
    r.presenter.image_changed()
    assert r.view.prediction is None and r.state.prediction is None
    assert not r.view.enabled.pdf and r.view.enabled.csv  # the batch can still be exported
    with pytest.raises(CxrError, match="no results"):
        r.presenter.report_inputs()
    r.images.image = FakeImage("/data/a.dcm")
    r.presenter.image_changed()
    assert r.view.prediction.path == "/data/a.dcm"


def test_a_result_that_arrives_after_the_image_changed_is_kept_not_shown() -> None:
    r = ready("a", image="/data/a.dcm")
    r.presenter.run_image()
    run = r.runner.last("classifying")
    r.images.image = FakeImage("/data/b.dcm")
    r.presenter.image_changed()
    run.finish([Prediction("/data/a.dcm")])
    assert r.view.prediction is None and "another image is shown" in r.view.status
    assert not r.runner.started("computing")  # no Grad-CAM of the wrong image
    r.images.image = FakeImage("/data/a.dcm")
    r.presenter.image_changed()
    assert r.view.prediction.path == "/data/a.dcm"


def test_a_heatmap_is_shown_over_its_own_image_only() -> None:
    r = ready("a", image="/data/a.dcm")
    r.presenter.explain("gradcam")
    job = r.runner.last("computing")
    r.images.image = FakeImage("/data/b.dcm")
    r.presenter.image_changed()
    heatmap = Heatmap()
    job.finish(heatmap)
    assert r.view.heatmap is None and r.state.heatmap is heatmap
    r.images.image = FakeImage("/data/a.dcm")
    r.presenter.image_changed()
    assert r.view.heatmap is heatmap


def test_choosing_a_batch_row_shows_that_image() -> None:
    r = ready("a", image="/data/a.dcm")
    r.images.open_paths = ["/data/a.dcm", "/data/b.dcm"]
    r.presenter.run_all()
    preds = [Prediction("/data/a.dcm"), Prediction("/data/b.dcm", top_label="Pneumonia"),
             Prediction("/elsewhere/c.png")]  # fmt: skip
    r.runner.last("classifying").finish(batch(preds))
    r.presenter.batch_row_chosen(1)
    assert r.images.shown == ["/data/b.dcm"] and r.view.prediction is preds[1]
    r.presenter.batch_row_chosen(2)  # not open: shown by name, and the report refuses it
    assert r.view.prediction is preds[2] and "c.png" in r.view.status
    with pytest.raises(CxrError, match="another image"):
        r.presenter.report_inputs()


# ---------------------------------------------------------------------------- enabled state


def test_enabled_rules() -> None:
    r = rig(image=None)
    r.presenter.models_listed([])
    assert r.view.enabled == Enabled()  # no model
    r = ready("a", image=None)
    assert not r.view.enabled.run_image and not r.view.enabled.explain and not r.view.enabled.run_all
    r.images.image = FakeImage("/data/a.dcm")
    r.images.open_paths = ["/data/a.dcm"]
    r.presenter.image_changed()
    e = r.view.enabled
    assert e.run_image and e.run_series and e.run_all and e.explain
    assert not (e.pdf or e.png or e.csv)  # nothing to report yet
    r.presenter.run_image()
    assert not r.view.enabled.run_image and not r.view.enabled.run_all  # busy
    r.presenter.set_auto_explain(False)
    r.runner.last("classifying").finish([Prediction("/data/a.dcm")])
    e = r.view.enabled
    assert e.run_image and e.pdf and e.png and e.csv
    inputs = r.presenter.report_inputs()
    assert inputs.prediction.path == "/data/a.dcm" and inputs.heatmap is None
    assert inputs.model_version == "1.0" and inputs.device == "CPU"


def test_errors_are_one_readable_line() -> None:
    r = ready("a", image=None)
    r.presenter.run_image()
    assert r.view.errors == ["Open an image first."]
    r.images.image = FakeImage("/data/a.dcm")
    r.presenter.run_image()
    r.runner.last("classifying").fail("a.dcm: truncated pixel data")
    assert r.state.last_outcome == "error" and r.view.errors[-1] == "a.dcm: truncated pixel data"
    assert ("failed", "a.dcm: truncated pixel data") in r.view.events


# ---------------------------------------------------------------------------- the model library


class FakeLibraryView:
    def __init__(self) -> None:
        self.models: list[Any] = []
        self.selected = -1
        self.card: Any = "unset"
        self.entries: Any = "unset"
        self.tab = INSTALLED
        self.message = ""
        self.errors: list[str] = []
        self.busy = False
        self.enabled = (False, False, False)
        self.form: tuple[str, list[str]] | None = None
        self.changes = 0

    def show_models(self, models: list[Any], selected: int) -> None:
        self.models, self.selected = models, selected

    def show_card(self, model: Any) -> None:
        self.card = model

    def show_entries(self, entries: Any) -> None:
        self.entries = entries

    def show_tab(self, tab: int) -> None:
        self.tab = tab

    def show_message(self, text: str) -> None:
        self.message = text

    def show_error(self, message: str) -> None:
        self.message = message
        self.errors.append(message)

    def show_busy(self, busy: bool) -> None:
        self.busy = busy

    def show_progress(self, done: int, total: int, message: str) -> None:
        pass

    def set_enabled(self, import_: bool, remove: bool, download: bool) -> None:
        self.enabled = (import_, remove, download)

    def ask_import_form(self, path: str, architectures: list[str]) -> None:
        self.form = (path, architectures)

    def library_changed(self) -> None:
        self.changes += 1


def library() -> tuple[LibraryPresenter, FakeLibraryView, FakeRunner]:
    view, runner = FakeLibraryView(), FakeRunner()
    presenter = LibraryPresenter(view, runner)
    presenter.start()
    return presenter, view, runner


def test_library_lists_models_and_says_the_catalogue_is_being_read() -> None:
    p, view, runner = library()
    assert view.entries is None  # "reading the catalogue…", not a blank tab
    assert view.enabled == (True, False, False)
    runner.last("listing").finish([info("a"), info("b")])
    runner.last("reading the model catalogue").finish([SimpleNamespace(name="densenet")])
    assert [m.name for m in view.models] == ["a", "b"] and view.selected == 0 and view.card.name == "a"
    assert view.enabled == (True, True, True)
    p.model_chosen(1)
    runner.last("listing").finish([info("a"), info("b")])
    assert view.selected == 1  # the choice survives a refresh
    runner.last("listing").finish([])
    assert view.card is None and view.enabled == (True, False, True)


def test_library_imports_our_file_directly_and_asks_about_a_foreign_one() -> None:
    p, view, runner = library()
    p.import_path("/data/ours.safetensors")
    runner.last("reading ours").finish((True, ["cxr_resnet_small"]))
    imported = runner.last("importing ours")
    assert view.busy and view.enabled[0] is False
    p.download("x")
    assert "Wait for the current operation" in view.errors[-1]
    imported.finish(info("ours"))
    assert view.message == "'ours' is installed." and view.changes == 1 and view.tab == INSTALLED
    assert not view.busy and runner.last("listing")
    # a .pth: the form asks what it is; without labels it is refused
    p.import_path("/data/foreign.pth")
    runner.last("reading foreign").finish((False, ["cxr_resnet_small"]))
    assert view.form == ("/data/foreign.pth", ["cxr_resnet_small"])
    p.form_accepted("/data/foreign.pth", {"architecture": "cxr_resnet_small", "labels": []})
    assert "Name the labels" in view.errors[-1]
    p.form_accepted("/data/foreign.pth", {"architecture": "cxr_resnet_small", "labels": ["A", "B"]})
    runner.last("importing foreign").fail("foreign.pth: refused: unpickling it could run code")
    assert p.state.last_error.startswith("foreign.pth: refused") and view.changes == 1


def test_library_download_can_be_cancelled_and_remove_says_so() -> None:
    p, view, runner = library()
    view.tab = CATALOGUE
    p.download("densenet")
    job = runner.last("downloading densenet")
    p.cancel()
    assert job.cancelled
    job.stop()
    assert view.message == "Cancelled." and not view.busy and view.changes == 0
    p.remove("a")
    runner.last("removing a").finish("a")
    assert view.message == "'a' was removed." and view.changes == 1


def test_a_batch_says_what_could_not_be_read_and_what_was_left_out() -> None:
    r = ready("a")
    r.presenter.run_folder(["/data/folder"])
    job = r.runner.last("classifying a folder")
    outcome = batch([Prediction("/data/folder/x.dcm")])
    outcome.results.append(FileResult("/data/folder/broken.png", "/data/folder/broken.png",
                                      error="broken.png: not a PNG image"))  # fmt: skip
    outcome.skipped.append("/data/folder/README.txt")
    job.finish(outcome)
    assert r.state.batch is outcome and r.view.batch == outcome.predictions
    assert "1 image(s) classified with a" in r.view.status
    assert "1 file(s) could not be read: broken.png: not a PNG image" in r.view.status
    assert "1 file(s) that are not images were left out" in r.view.status
    assert r.view.prediction is None  # the viewer shows /data/a.dcm, which is not in the batch
    predictions, labels = r.presenter.csv_inputs()
    assert [p.path for p in predictions] == ["/data/folder/x.dcm"] and labels == ["Normal", "Pneumonia"]


def test_the_report_summarises_the_models_validation() -> None:
    provenance = SimpleNamespace(
        metrics={"best_epoch": 2, "per_class_auroc": {"NORMAL": 0.96},
                 "test": {"accuracy": 0.94, "loss": 0.28, "macro_auroc": 0.9641, "macro_f1": 0.92,
                          "n_images": 150, "n_patients": 83}},
        extra={"model_card": {"intended_use": "Research use only."}},
    )  # fmt: skip
    m = SimpleNamespace(provenance=provenance)
    assert validation_summary(m) == (
        "test split, 150 images, 83 patients: accuracy 0.940, macro AUROC 0.964, macro F1 0.920"
    )
    assert intended_use(m) == "Research use only."
    assert validation_summary(SimpleNamespace(provenance=SimpleNamespace(metrics={"accuracy": 0.5}))) == (
        "accuracy 0.500"
    )
    assert validation_summary(SimpleNamespace(provenance=SimpleNamespace(metrics={}))) == ""
    assert validation_summary(None) == "" and intended_use(None) == ""


def test_an_out_of_scope_image_shows_the_banner_and_hides_results_unless_shown_anyway() -> None:
    r = ready("a", image="/data/mr.dcm")
    r.images.open_paths = ["/data/mr.dcm", "/data/cxr.dcm"]
    r.presenter.set_auto_explain(False)
    r.presenter.run_image()
    flagged = Prediction("/data/mr.dcm", in_scope=False, scope_note="modality MR, not a radiograph")
    r.runner.last("classifying").finish([flagged])
    text, hidden = r.view.scope
    assert text.startswith("This does not look like a frontal chest radiograph: results hidden")
    assert "modality MR" in text and hidden
    assert r.view.prediction is None  # no probabilities shown
    assert "does not look like a frontal chest radiograph" in r.view.status
    assert r.presenter.report_inputs().show_out_of_scope is False  # the report says results are hidden
    r.presenter.set_show_out_of_scope(True)  # "Show anyway (research use)"
    assert r.view.prediction is flagged and r.view.scope == (text, False)
    assert "research use" in r.view.status
    r.presenter.set_show_out_of_scope(False)
    r.presenter.run_all()
    r.runner.last("classifying every").finish(batch([flagged, Prediction("/data/cxr.dcm")]))
    assert "1 image(s) do not look like frontal chest radiographs" in r.view.status
    r.images.image = FakeImage("/data/cxr.dcm")
    r.presenter.image_changed()
    assert r.view.scope == ("", False) and r.view.prediction.path == "/data/cxr.dcm"
