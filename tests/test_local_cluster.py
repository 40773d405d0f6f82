"""The local Dask cluster of ``cellae encode --workers N`` stops on Ctrl-C without tracebacks."""

from __future__ import annotations

import logging

import distributed
import pytest
from distributed.comm.addressing import parse_address
from distributed.deploy.spec import SpecCluster

from napari_cellae.pipeline.distributed import dask_client


def _record(exc: BaseException) -> logging.LogRecord:
    return logging.LogRecord(
        "asyncio",
        logging.ERROR,
        __file__,
        1,
        "Task exception was never retrieved",
        None,
        (type(exc), exc, exc.__traceback__),
    )


def _raised(call) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("no exception")


def test_an_interrupted_run_hides_only_dask_tasks_cut_off_by_closing() -> None:
    # Ctrl-C while the model was sent to the workers printed "Task exception was never
    # retrieved ... KeyError: 'tcp://...'" above 'cellae: interrupted'.
    asyncio_log = logging.getLogger("asyncio")
    with (
        pytest.raises(KeyboardInterrupt),
        dask_client(1, processes=False),
    ):
        raise KeyboardInterrupt
    from_dask = _record(_raised(lambda: parse_address(123)))
    from_elsewhere = _record(_raised(lambda: {}["key"]))
    assert not asyncio_log.filter(from_dask)
    assert asyncio_log.filter(from_elsewhere)  # other asyncio errors are still shown


def test_ctrl_c_while_workers_start_closes_the_half_made_cluster(monkeypatch) -> None:
    # distributed closed it when the process exited, with "AssertionError: Status.init".
    made = []

    class Interrupted(distributed.LocalCluster):
        def __init__(self, *args, **kwargs) -> None:
            made.append(self)
            super().__init__(*args, **kwargs)
            raise KeyboardInterrupt

    monkeypatch.setattr(distributed, "LocalCluster", Interrupted)
    with pytest.raises(KeyboardInterrupt), dask_client(1, processes=False):
        pass
    (cluster,) = made
    assert cluster.status.name == "closed"
    assert not cluster.shutdown_on_close  # distributed's exit hook leaves it alone
    assert all(c is not cluster for c in SpecCluster._instances if c.shutdown_on_close)


def _sigint() -> str:
    import signal

    handler = signal.getsignal(signal.SIGINT)
    return "ignored" if handler == signal.SIG_IGN else str(handler)


def test_worker_processes_leave_ctrl_c_to_the_client() -> None:
    # A terminal's Ctrl-C reaches the workers too: each printed a KeyboardInterrupt
    # traceback ('Process Dask Worker process (from Nanny)') under 'cellae: interrupted'.
    with dask_client(workers=1) as client:
        assert list(client.run(_sigint).values()) == ["ignored"]
    before = _sigint()
    with dask_client(workers=1, processes=False) as client:  # workers in this process
        assert list(client.run(_sigint).values()) == [before]
    assert _sigint() == before


def _sigint_blocked() -> bool:
    import signal

    return signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_worker_processes_start_deaf_to_ctrl_c() -> None:
    # Ctrl-C while the workers still imported (before worker_setup ran) printed a
    # KeyboardInterrupt traceback per worker: they now start with SIGINT blocked, as the
    # thread that starts them has it, while this thread still takes it.
    before = _sigint_blocked()
    with dask_client(workers=1) as client:
        assert list(client.run(_sigint_blocked).values()) == [True]
        assert _sigint_blocked() == before
    assert _sigint_blocked() == before and not before


def test_a_platform_without_signal_masks_still_starts_the_cluster(monkeypatch) -> None:
    # Windows has no pthread_sigmask: the deaf loop must not be the end of --workers N.
    import signal

    monkeypatch.delattr(signal, "pthread_sigmask")
    with dask_client(workers=1) as client:
        assert client.submit(sum, [1, 2]).result() == 3
