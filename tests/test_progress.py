"""The one progress widget bound to real background jobs, and the jobs' partial-result channel."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.progress import ProgressPanel, count_text, megabytes_text, percent_text
from app.workers import Job, Progress, running_jobs

WAIT_MS = 10_000


def hosted(qtbot, **options) -> ProgressPanel:
    """A panel inside a shown window, as in the application (it shows and hides itself)."""
    host = QWidget()
    qtbot.addWidget(host)
    widget = ProgressPanel(host, **options)
    QVBoxLayout(host).addWidget(widget)
    host.show()
    widget.test_host = host  # keeps the host window alive as long as the panel
    return widget


@pytest.fixture
def panel(qtbot):
    return hosted(qtbot, cancel_tooltip="Stop it", object_name="testProgress")


def gated(gate: threading.Event, reported: threading.Event):
    """A job that reports 2 of 4, then waits until the test lets it go on (or cancels it)."""

    def fn(progress, cancel):
        progress(2, 4, "Counting")
        reported.set()
        while not gate.wait(0.01):
            cancel.check()
        cancel.check()
        progress(4, 4, "Counting")
        return "counted"

    return fn


def test_panel_is_busy_while_the_job_runs_and_stops_animating_when_done(qtbot, panel):
    assert panel.isHidden() and not panel.busy  # idle at start: nothing shown, nothing moving
    gate, reported = threading.Event(), threading.Event()
    job = Job(gated(gate, reported), "counting")
    busy = []
    panel.busyChanged.connect(busy.append)
    panel.bind(job, "Starting")
    assert panel.busy and panel.animating and panel.cancel_button.isVisibleTo(panel)
    assert panel.bar.format() == "Starting"
    job.start()
    qtbot.waitUntil(lambda: panel.bar.maximum() == 4, timeout=WAIT_MS)  # the total arrived
    assert panel.bar.value() == 2 and not panel.animating
    assert panel.bar.format() == "Counting (%p%)" and panel.bar.text() == "Counting (50%)"
    with qtbot.waitSignal(job.signals.done, timeout=WAIT_MS):
        gate.set()
    assert job.state == "finished" and job.result == "counted"
    assert not panel.busy and panel.isHidden() and not panel.animating
    assert (panel.bar.minimum(), panel.bar.maximum()) == (0, 1)  # 0..0 would keep animating
    assert busy == [True, False]
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)


def test_a_job_with_no_total_animates_until_it_fails_then_stops(qtbot):
    panel = hosted(qtbot, hide_when_idle=False, show_label=True)
    release = threading.Event()

    def fn(progress, _cancel):
        progress(0, 0, "Loading the model")
        release.wait(5)
        from ml.errors import CxrError

        raise CxrError("The model file is damaged.")

    job = Job(fn, "loading")
    panel.bind(job)
    job.start()
    qtbot.waitUntil(lambda: panel.label.text() == "Loading the model", timeout=WAIT_MS)
    assert panel.animating
    with qtbot.waitSignal(job.signals.done, timeout=WAIT_MS):
        release.set()
    assert job.state == "error" and job.error_message == "The model file is damaged."
    assert not panel.animating and not panel.busy
    assert panel.isVisible() and not panel.cancel_button.isVisibleTo(panel)  # shown at rest


def test_cancel_button_cancels_the_bound_job(qtbot, panel):
    gate, reported = threading.Event(), threading.Event()
    job = Job(gated(gate, reported), "counting")
    panel.bind(job)
    requested = []
    panel.cancelRequested.connect(lambda: requested.append(True))
    job.start()
    assert reported.wait(5)
    with qtbot.waitSignal(job.signals.cancelled, timeout=WAIT_MS):
        panel.cancel_button.click()
    qtbot.waitUntil(lambda: job.is_done, timeout=WAIT_MS)
    assert requested == [True] and job.state == "cancelled" and job.result is None
    assert not panel.busy and panel.isHidden()


def test_rebinding_ignores_the_old_jobs_late_signals(qtbot, panel):
    gate1, rep1 = threading.Event(), threading.Event()
    gate2, rep2 = threading.Event(), threading.Event()
    first, second = Job(gated(gate1, rep1), "first"), Job(gated(gate2, rep2), "second")
    panel.bind(first)
    first.start()
    assert rep1.wait(5)
    panel.bind(second, "Second")
    with qtbot.waitSignal(first.signals.done, timeout=WAIT_MS):
        gate1.set()
    assert panel.busy and panel.job is second  # the old job's end does not end the new one
    second.start()
    with qtbot.waitSignal(second.signals.done, timeout=WAIT_MS):
        gate2.set()
    assert not panel.busy
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)


def test_binding_a_finished_job_leaves_the_panel_idle(qtbot, panel):
    job = Job(lambda _p, _c: 1, "quick")
    with qtbot.waitSignal(job.signals.done, timeout=WAIT_MS):
        job.start()
    panel.bind(job)
    assert not panel.busy and panel.isHidden()


def test_partial_results_arrive_in_order_on_the_gui_thread(qtbot):
    """Both ways to hand over partial results: progress.partial(value) and a generator's yield."""
    gui = threading.get_ident()

    def by_reporter(progress, _cancel):
        for i in range(3):
            progress.partial(i)
        return "r"

    def by_yield(progress, _cancel):
        for i in range(3):
            progress(i + 1, 3, "step")
            yield i * 10
        return "g"

    for fn, expected, result in ((by_reporter, [0, 1, 2], "r"), (by_yield, [0, 10, 20], "g")):
        job = Job(fn, "partial")
        seen, threads = [], []
        job.signals.partial.connect(lambda v, s=seen, t=threads: (s.append(v), t.append(threading.get_ident())))
        with qtbot.waitSignal(job.signals.finished, timeout=WAIT_MS) as got:
            job.start()
        qtbot.waitUntil(lambda j=job: j.is_done, timeout=WAIT_MS)
        assert seen == expected and got.args == [result] and set(threads) == {gui}


def test_a_generator_job_stops_at_the_next_yield_when_cancelled(qtbot):
    cleaned = threading.Event()
    yielded = threading.Event()

    def endless(_progress, _cancel):
        try:
            while True:
                yielded.set()
                yield 1
        finally:
            cleaned.set()

    job = Job(endless, "endless")
    with qtbot.waitSignal(job.signals.cancelled, timeout=WAIT_MS):
        job.start()
        assert yielded.wait(5)
        job.cancel()
    assert cleaned.wait(5)  # the generator was closed: its finally block ran
    qtbot.waitUntil(lambda: job.is_done, timeout=WAIT_MS)


def test_formatters_and_progress_values():
    p = Progress(3 * 2**20, 12 * 2**20, "Downloading")
    assert megabytes_text(p) == "Downloading: 3.0 of 12.0 MB"
    assert count_text(Progress(2, 5, "Reading files")) == "Reading files %v/%m"
    assert percent_text(Progress(0, 0, "Loading")) == "Loading"
    assert p.fraction == 0.25 and Progress(0, 0).indeterminate and Progress(0, 0).fraction is None


def test_byte_counts_beyond_int_range_keep_the_bar_proportional(qtbot, panel):
    panel.set_busy(True, "Downloading")
    panel.set_progress(3 * 2**31, 6 * 2**31, "Downloading")
    assert panel.bar.maximum() > 0 and abs(panel.bar.value() / panel.bar.maximum() - 0.5) < 0.01
