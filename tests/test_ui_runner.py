"""The job runner: one worker at a time, typed messages in, an outcome with ready table out."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellae._ui.runner import Outcome, viewer_job, warm_up_engine
from napari_cellae.core.crops import collect_crops
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.pipeline.jobs import JobFailed
from napari_cellae.pipeline.messages import Alert, Encoded, Status
from napari_cellae.pipeline.results import RunResult
from ui_helpers import start_job


@pytest.fixture
def run_result(cellcognition_file) -> RunResult:
    with CellH5(cellcognition_file) as f:
        crops = collect_crops(f, "primary__primary", 16)
    embedding = np.random.default_rng(1).normal(size=(len(crops), 2))
    return RunResult(None, crops, embedding=embedding, features=embedding)


def _job(result):
    yield Status("working")
    yield Encoded(1, 1)
    return result


def test_viewer_job_builds_the_table_in_the_worker(run_result):
    job = viewer_job(_job, run_result)
    assert next(job) == Status("working") and next(job) == Encoded(1, 1)
    assert "novelty" in next(job).text  # the findings are worked out here, too
    with pytest.raises(StopIteration) as done:
        next(job)
    outcome = done.value.value
    assert outcome.result is run_result and len(outcome.table.features) == len(run_result.crops)
    assert set(outcome.table.features["position"]) == {"A01_0001", "B02_0001"}
    # no mapping, so no controls: no hit lists, and the note that says why
    assert outcome.findings.hits == {} and "negative-control" in outcome.findings.discovery.note
    stopped = viewer_job(_job, None)
    next(stopped), next(stopped)
    with pytest.raises(StopIteration) as done:
        next(stopped)
    assert done.value.value == Outcome(None)


def test_runner_feeds_callbacks_and_finishes(qtbot, run_result, runner):
    seen: dict[str, list] = {"message": [], "outcome": [], "error": [], "finished": []}
    worker = runner.start(
        _job,
        run_result,
        on_message=seen["message"].append,
        on_outcome=seen["outcome"].append,
        on_error=seen["error"].append,
        on_finished=lambda: seen["finished"].append(runner.running),
        total=3,
        description="test",
        start=False,
    )
    assert runner.running and runner.worker is worker
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        worker.start()
    qtbot.waitUntil(lambda: len(seen["finished"]) == 1, timeout=5000)
    assert seen["message"][:2] == [Status("working"), Encoded(1, 1)]
    assert seen["outcome"][0].result is run_result and not seen["error"]
    assert seen["finished"] == [False] and not runner.running


def test_a_job_waits_for_the_warm_up_and_its_warnings_reach_the_widget(
    qtbot, monkeypatch, run_result, runner
):
    import threading
    import warnings

    from napari_cellae._ui import runner as runner_module

    release = threading.Event()
    warming = threading.Thread(target=release.wait, daemon=True)
    warming.start()
    monkeypatch.setattr(runner_module, "_warm_up", warming)

    def warning_job(result):
        warnings.warn("no row maps 1 of the 2 positions", stacklevel=1)
        yield Status("working")
        return result

    seen: list = []
    worker = start_job(
        runner, warning_job, run_result, on_message=seen.append, on_error=seen.append
    )
    qtbot.wait(300)
    # not started while the warm-up swaps the process's warning filters
    assert seen == [] and runner.running
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        release.set()
    qtbot.waitUntil(lambda: Status("working") in seen, timeout=5000)
    assert Alert("no row maps 1 of the 2 positions") in seen


def test_runtime_errors_reach_on_error(qtbot, runner):
    def failing():
        yield Status("working")
        raise RuntimeError("the loss became infinite")

    errors: list[BaseException] = []
    worker = start_job(runner, failing, on_error=errors.append, start=False)
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        worker.start()
    assert len(errors) == 1 and isinstance(errors[0], JobFailed)


def test_warnings_of_the_job_reach_on_message_once(qtbot, runner):
    # e.g. "hold one value ... there is no image to learn from": napari's worker dropped
    # them, and a run on an all-black channel ended "Done" without a word.
    import warnings

    def warning(run):
        for _ in range(2):
            warnings.warn(f"no image to learn from ({run})", UserWarning, stacklevel=1)
            yield Status("working")
        return None

    for run in (1, 2):
        messages: list = []
        worker = start_job(runner, warning, run, on_message=messages.append, start=False)
        with qtbot.waitSignal(worker.finished, timeout=30_000):
            worker.start()
        qtbot.wait(50)  # the last queued signals
        alerts = [m for m in messages if isinstance(m, Alert)]
        assert alerts == [Alert(f"no image to learn from ({run})")]
        assert messages.count(Status("working")) == 2


def test_later_runs_in_a_later_turn(qtbot, runner):
    done: list[int] = []
    runner.later(lambda: done.append(1))
    assert not done
    qtbot.waitUntil(lambda: done == [1], timeout=5000)


def test_engine_warms_up_once():
    thread = warm_up_engine()
    assert warm_up_engine() is thread
    thread.join(timeout=120)
    assert not thread.is_alive()
    import sys

    assert "torch" in sys.modules and "napari_cellae.core.trainer" in sys.modules


def test_a_quit_job_says_so(qtbot, runner):
    # Stop while a loaded model computed features: the job returns nothing, and the
    # status line kept "Computing features: 2048/5000 cells".
    from napari_cellae._ui.runner import QUIT

    def endless():
        while True:
            yield Encoded(1, 2)

    seen: list = []
    finished: list[bool] = []

    def on_message(message) -> None:
        seen.append(message)
        runner.quit()

    worker = runner.start(
        endless,
        on_message=on_message,
        on_outcome=seen.append,
        on_error=seen.append,
        on_finished=lambda: finished.append(True),
        start=False,
    )
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        worker.start()
    qtbot.waitUntil(lambda: finished == [True], timeout=5000)
    assert seen[-1] == Status(QUIT) and not runner.running
    assert all(isinstance(m, Encoded | Status) for m in seen)  # no outcome, no error


def test_a_warning_that_arrives_after_the_widget_closed_is_dropped(qtbot, runner):
    # A warning relayed from a run (a queued signal) reached the widget after the viewer
    # closed: "wrapped C/C++ object of type QLabel has been deleted" in the event loop.
    import warnings

    def deleted(message) -> None:
        raise RuntimeError("wrapped C/C++ object of type QLabel has been deleted")

    def warning():
        warnings.warn("late", UserWarning, stacklevel=1)
        yield Status("working")

    worker = start_job(runner, warning, start=False)
    runner._on_message = deleted  # the widget is gone by the time the warning arrives
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        worker.start()
    qtbot.wait(50)  # the queued warning: pytest-qt fails the test on an exception


def test_a_job_waiting_for_another_docks_job_says_so(qtbot, run_result, runner):
    # A second dock's Train, pressed while the first trained, said 'Waiting for the map
    # (UMAP) of the last run to finish…' until the first dock's training had ended.
    import threading

    from qtpy.QtWidgets import QWidget

    from napari_cellae._ui.runner import JobRunner

    release = threading.Event()

    def long_job(result):
        yield Status("training")
        release.wait(30)
        return result

    warm_up_engine().join()
    first = start_job(runner, long_job, run_result)
    owner = QWidget()
    qtbot.addWidget(owner)
    seen: list = []
    second = start_job(JobRunner(owner), _job, run_result, on_message=seen.append)
    assert seen == [Status("Waiting for the run of another Deep Learning Module to finish…")]
    with qtbot.waitSignals([first.finished, second.finished], timeout=30_000):
        release.set()
    qtbot.waitUntil(lambda: Status("working") in seen, timeout=5000)


def test_qt_keeps_no_runner_alive(qtbot):
    # The runner's hook on its widget's `destroyed` was a lambda that PyQt held, and the
    # runner with it, while the widget lived. Once the garbage collector had cleared such a
    # lambda before Qt deleted the widget, Qt called it and Python crashed (segmentation
    # fault at a test's start, after the viewer of the test before closed).
    import gc
    import weakref

    from qtpy.QtWidgets import QWidget

    from napari_cellae._ui.runner import JobRunner

    owner = QWidget()
    qtbot.addWidget(owner)
    runner = JobRunner(owner)
    collected = weakref.ref(runner)
    del runner
    gc.collect()
    assert collected() is None


def test_deleting_the_owner_detaches_its_job(qtbot, run_result):
    # Closing the viewer deletes the widget without a close event.
    import threading

    from qtpy.QtCore import QEvent
    from qtpy.QtWidgets import QApplication, QWidget

    from napari_cellae._ui.runner import JobRunner

    release = threading.Event()

    def long_job(result):
        yield Status("training")
        release.wait(30)
        yield Status("late")
        return result

    warm_up_engine().join()
    deleted: list[bool] = []
    runner = JobRunner(QWidget(), on_owner_deleted=lambda: deleted.append(True))
    seen: list = []
    worker = start_job(runner, long_job, run_result, on_message=seen.append)
    qtbot.waitUntil(lambda: Status("training") in seen, timeout=10_000)
    runner.owner.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert deleted == [True] and not runner.running
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        release.set()
    qtbot.wait(50)
    assert Status("late") not in seen  # asked to quit, and nothing reaches the owner


def test_a_finished_job_holds_nothing_of_its_run_or_its_widget(qtbot, runner):
    # napari keeps every worker made while a viewer is open (its window's task list) as
    # long as the window object lives, past its closing: through its slots a finished
    # job held the widget, its viewer and the run's network; and a job quit mid-run (the
    # dock closed) held its crops in its suspended generator. Closed docks and viewers
    # stayed in memory all day.
    import gc
    import weakref

    class Crops:
        pass

    class Widget:
        def __init__(self) -> None:
            self.seen: list = []

    def endless(crops):
        while crops is not None:
            yield Status("training")

    crops, widget = Crops(), Widget()
    crops_gone, widget_gone = weakref.ref(crops), weakref.ref(widget)
    seen = widget.seen

    def on_finished(widget=widget) -> None:
        widget.seen.append("end")

    worker = start_job(
        runner,
        endless,
        crops,
        on_message=lambda message: runner.quit(),  # as closing the dock does
        on_error=lambda error, widget=widget: widget.seen.append(error),
        on_finished=on_finished,
        start=False,
    )
    del crops, widget, on_finished
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        worker.start()  # the worker stays referenced, as napari's task list keeps it

    def let_go() -> bool:
        gc.collect()
        return crops_gone() is None and widget_gone() is None

    qtbot.waitUntil(let_go, timeout=5000)
    assert seen == ["end"]  # its end reached the widget first


def test_a_job_needs_no_private_signal_of_superqt(qtbot, runner, monkeypatch, run_result):
    # The runner let go of a finished job on superqt's private `_finished` signal: a
    # superqt without it failed every Train with an AttributeError.
    from napari.qt.threading import WorkerBaseSignals

    with monkeypatch.context() as patched:
        patched.delattr(WorkerBaseSignals, "_finished")
        outcomes: list = []
        worker = start_job(runner, _job, run_result, on_outcome=outcomes.append, start=False)
    warm_up_engine().join()
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        runner.launch(worker)
    assert [o.result for o in outcomes] == [run_result]
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)


def test_a_job_abandoned_during_the_warm_up_never_starts_and_lets_go(qtbot, monkeypatch, runner):
    # The dock closed while its job waited for the engine's warm-up: the worker, never
    # started, stayed a pending task for napari (its close dialog asked about it) and held
    # the job's arguments and the widget's slots.
    import gc
    import threading
    import weakref

    from napari.qt.threading import WorkerBase

    from napari_cellae._ui import runner as runner_module

    class Crops:
        pass

    from napari_cellae._ui.background import warning_state_held

    # An earlier test's map or run may still be ending: this job would wait for it and
    # say so (seen), which is right, but not what is tested here.
    qtbot.waitUntil(lambda: not warning_state_held(), timeout=20_000)
    release = threading.Event()
    warming = threading.Thread(target=release.wait, daemon=True)
    warming.start()
    monkeypatch.setattr(runner_module, "_warm_up", warming)
    ran: list = []

    def job(crops):
        ran.append(True)
        yield Status("training")
        return None

    crops = Crops()
    crops_gone = weakref.ref(crops)
    seen: list = []
    worker = start_job(runner, job, crops, on_message=seen.append, on_error=seen.append)
    del crops
    ended: list = []
    worker.aborted.connect(lambda: ended.append("aborted"))  # napari: task cancelled
    worker.finished.connect(lambda: ended.append("finished"))
    qtbot.wait(3 * runner_module.WAIT_POLL_MS)
    assert runner.detach()  # the dock closed
    assert ended == ["aborted", "finished"] and not runner.running
    release.set()
    warming.join()
    qtbot.wait(5 * runner_module.WAIT_POLL_MS)  # the launch's polls come and go
    assert ran == [] and seen == [] and worker not in WorkerBase._worker_set

    def let_go() -> bool:
        gc.collect()
        return crops_gone() is None

    qtbot.waitUntil(let_go, timeout=5000)
