"""Side-task workers: results delivered like napari's workers, Python's warning state left
alone, even when their runs overlap a job's without nesting."""

from __future__ import annotations

import threading
import warnings

import pytest
from napari.qt.threading import WorkerBase, create_worker

from napari_cellae._ui.background import (
    SideTaskWorker,
    hold_warning_state,
    side_task,
    warning_state_held,
)

WAIT_MS = 30_000


def _warning_state() -> tuple:
    return warnings.showwarning, list(warnings.filters)


def test_a_side_task_returns_its_result_without_swapping_the_warning_state(qtbot):
    seen: list = []

    def work(a, b):
        seen.append(_warning_state())
        return a + b

    before = _warning_state()
    worker = side_task(work, 2, 3)
    assert isinstance(worker, SideTaskWorker)
    returned: list = []
    worker.returned.connect(returned.append)
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        worker.start()
    assert returned == [5]
    assert seen == [before]  # napari's own workers put their relay and "always" here
    assert _warning_state() == before
    # superqt (napari waits for its started workers when it quits) forgets it
    qtbot.waitUntil(lambda: worker not in WorkerBase._worker_set, timeout=5000)


def test_a_side_task_error_reaches_its_handler(qtbot):
    def work():
        raise OSError("disk full")

    errors: list = []
    worker = side_task(work, errored=errors.append)
    returned: list = []
    worker.returned.connect(returned.append)
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        worker.start()
    assert returned == []
    assert [str(e) for e in errors] == ["disk full"]


def test_a_job_ending_before_a_side_task_leaves_no_stale_warning_relay(qtbot):
    """A job (napari's worker, which swaps the warning state) starts, a side task starts
    during it, the job ends first. With two swapping workers the second would put back the
    job's relay when it ends, and every later warning would go to a finished job."""
    job_may_end, side_may_end = threading.Event(), threading.Event()
    side_started = threading.Event()

    def job():
        job_may_end.wait(WAIT_MS / 1000)

    def side():
        side_started.set()
        side_may_end.wait(WAIT_MS / 1000)
        return "map"

    before = _warning_state()
    job_worker = create_worker(job, _start_thread=False, _connect={"errored": pytest.fail})
    side_worker = side_task(side, errored=pytest.fail)
    job_worker.start()
    qtbot.waitUntil(lambda: _warning_state() != before, timeout=WAIT_MS)  # the job's swap
    side_worker.start()
    assert side_started.wait(WAIT_MS / 1000)
    with qtbot.waitSignal(job_worker.finished, timeout=WAIT_MS):
        job_may_end.set()
    with qtbot.waitSignal(side_worker.finished, timeout=WAIT_MS):
        side_may_end.set()
    assert _warning_state() == before


def test_a_side_task_warning_goes_where_warnings_go(qtbot):
    def work():
        warnings.warn("3 positions are not in the mapping", UserWarning, stacklevel=1)
        return 1

    shown: list = []
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *rest: shown.append(str(message))
        worker = side_task(work)
        with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
            worker.start()
    assert shown == ["3 positions are not in the mapping"]


def test_a_side_task_that_swaps_the_warning_state_waits_for_the_job(qtbot):
    """The UMAP map quiets UMAP inside warnings.catch_warnings(): beside a job, the one that
    ended last put back a stale state (a finished job's relay, or 'ignore' filters)."""
    order: list[str] = []
    job_may_end = threading.Event()

    def job():
        order.append("job starts")
        job_may_end.wait(WAIT_MS / 1000)
        order.append("job ends")

    def umap_like():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            order.append("map")
        return "map"

    before = _warning_state()
    job_worker = create_worker(job, _start_thread=False, _connect={"errored": pytest.fail})
    hold_warning_state(job_worker)  # as JobRunner.launch does
    job_worker.start()
    qtbot.waitUntil(lambda: order == ["job starts"], timeout=WAIT_MS)
    side = side_task(umap_like, errored=pytest.fail, swaps_warnings=True)
    side.start()
    qtbot.wait(300)
    assert order == ["job starts"] and warning_state_held()  # waiting, not started
    with qtbot.waitSignal(side.finished, timeout=WAIT_MS):
        job_may_end.set()
    assert order == ["job starts", "job ends", "map"]
    qtbot.waitUntil(lambda: not warning_state_held(), timeout=WAIT_MS)  # its own slot
    assert _warning_state() == before
    plain = side_task(lambda: "gallery")  # one that leaves the state alone need not wait
    assert not plain.swaps_warnings


def test_a_job_waits_for_a_side_task_that_swaps_the_warning_state(qtbot, runner):
    from napari_cellae.pipeline.messages import Status
    from ui_helpers import start_job

    map_may_end = threading.Event()
    side = side_task(map_may_end.wait, WAIT_MS / 1000, errored=pytest.fail, swaps_warnings=True)
    side.start()
    assert warning_state_held()

    def job():
        yield Status("working")
        return None

    seen: list = []
    worker = start_job(runner, job, on_message=seen.append, on_error=pytest.fail)
    qtbot.wait(300)
    # a run started right after the last one waits for its map, and says so once
    waiting = Status("Waiting for the map (UMAP) of the last run to finish…")
    assert seen == [waiting]
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        map_may_end.set()
    assert seen == [waiting, Status("working")]
    qtbot.waitUntil(lambda: not warning_state_held(), timeout=WAIT_MS)


@pytest.mark.parametrize("fails", [False, True])
def test_a_side_task_ending_after_its_signals_were_deleted_raises_nothing(qtbot, fails):
    # The viewer closed while a UMAP map was made, Python exited, and the map's thread
    # ended after Qt had deleted its signals: 'wrapped C/C++ object of type
    # WorkerBaseSignals has been deleted' raised in Qt's thread pool aborted Python.
    import qtpy

    if qtpy.PYSIDE6:
        from shiboken6 import delete
    else:
        from qtpy.sip import delete

    def work():
        if fails:
            raise OSError("disk full")
        return 1

    worker = side_task(work)
    delete(worker.signals)
    worker.run()  # as the thread pool would, after the deletion: nothing raised
    assert not worker._running


def test_a_finished_side_task_holds_nothing_of_its_work_or_its_receivers(qtbot):
    # napari keeps every worker made while a viewer is open (its window's task list, for
    # the close dialog) as long as the window object lives, past its closing: what a
    # finished map, gallery or save held (the run's cells as arguments, the widget through
    # its slots) stayed in memory all day.
    import gc
    import weakref

    class Cells:
        pass

    class Receiver:
        def ready(self, value) -> None:
            self.value = value

    cells, receiver = Cells(), Receiver()
    cells_gone, receiver_gone = weakref.ref(cells), weakref.ref(receiver)
    worker = side_task(lambda given: 1, cells)  # kept, as napari keeps it
    worker.returned.connect(lambda value, to=receiver: to.ready(value))  # as Results does
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        worker.start()
    assert receiver.value == 1
    del cells, receiver

    def let_go() -> bool:
        gc.collect()
        return cells_gone() is None and receiver_gone() is None

    qtbot.waitUntil(let_go, timeout=5000)


def test_letting_go_of_signals_without_slots_warns_nothing(qtbot):
    # PySide6 warns ('libpyside: Failed to disconnect (None) from signal "started()"', a
    # RuntimeWarning shown as a napari notification after every map) where PyQt raises the
    # TypeError that was suppressed: only the signals that have slots are disconnected.
    import gc
    import weakref

    class Receiver:
        def ready(self, value) -> None:
            self.value = value

    receiver = Receiver()
    receiver_gone = weakref.ref(receiver)
    worker = side_task(lambda: 1)  # nothing on `started`, `warned`, `errored`, ...
    worker.returned.connect(lambda value, to=receiver: to.ready(value))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        worker.run()  # as Qt's thread pool would; `ended` lets go in this thread
    assert receiver.value == 1
    del receiver

    def let_go() -> bool:  # the one signal with a slot was still disconnected
        gc.collect()
        return receiver_gone() is None

    qtbot.waitUntil(let_go, timeout=5000)


def test_a_side_task_needs_no_private_signal_of_superqt(qtbot, monkeypatch):
    # superqt forgets a started worker on its private `_finished` signal; the widget let go
    # of a finished task's receivers on it too. A superqt without it must not break a task
    # (an AttributeError in Qt's thread pool) nor keep its receivers.
    import gc
    import weakref

    from napari.qt.threading import WorkerBaseSignals

    class Receiver:
        def ready(self, value) -> None:
            self.value = value

    monkeypatch.delattr(WorkerBaseSignals, "_finished")
    receiver = Receiver()
    receiver_gone = weakref.ref(receiver)
    worker = side_task(lambda: 1)
    worker.returned.connect(lambda value, to=receiver: to.ready(value))
    finished: list = []
    worker.finished.connect(lambda: finished.append(True))
    worker.run()  # as Qt's thread pool would (superqt's start needs the signal)
    assert receiver.value == 1 and finished == [True] and not worker._running
    del receiver

    def let_go() -> bool:  # PyQt deletes a disconnected slot's proxy in a later turn
        gc.collect()
        return receiver_gone() is None

    qtbot.waitUntil(let_go, timeout=5000)
