"""Encoding on a Dask cluster (pipeline.distributed): equal to the serial encode, in order;
unreachable schedulers, files missing on a worker and dying workers give a clear message and
no output."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import dask
import numpy as np
import pytest
from distributed import LocalCluster, WorkerPlugin

from cli_helpers import one_line_error
from conftest import synthetic_position
from napari_cellae.cli import main
from napari_cellae.core.model_file import save_model
from napari_cellae.export.explorer import read_explorer_hdf
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.pipeline import distributed as dist_mod
from napari_cellae.pipeline.distributed import cluster_runner, dask_client
from napari_cellae.pipeline.streaming import close_open_files, encode_stream
from test_streaming import assert_same_file, random_model


@pytest.fixture
def plate(tmp_path: Path) -> Path:
    """Six positions (one file each, behind a master file), 15 cells each."""
    folder = tmp_path / "plate" / "hdf5"
    folder.mkdir(parents=True)
    wells = ["A01", "A02", "A03", "B01", "B02", "B03"]
    return write_cellh5(
        folder / "_all_positions.ch5",
        [synthetic_position(w, "0001", seed=i) for i, w in enumerate(wells)],
        channel_names=["rfp"],
        object_channels={"primary__primary": 0},
        flavour="cellcognition",
        split_files=True,
    )


@pytest.fixture(autouse=True)
def _close_files():
    yield
    close_open_files()  # thread workers share this process's open files


def test_two_workers_equal_the_serial_encode_in_order(plate, tmp_path):
    trained = random_model()
    serial = encode_stream([plate], trained, tmp_path / "serial.hdf")
    seen = []
    with dask_client(2, processes=False) as client:
        # a window of 3: results are handed on in order while later positions still run
        result = encode_stream(
            [plate],
            trained,
            tmp_path / "dask.hdf",
            progress=lambda d, t: seen.append((d, t)),
            runner=cluster_runner(client, window=3),
        )
    assert_same_file(tmp_path / "dask.hdf", tmp_path / "serial.hdf", atol=1e-5)
    assert (result.n_cells, result.n_positions) == (serial.n_cells, serial.n_positions) == (90, 6)
    assert seen == [(d, 6) for d in range(7)]


def test_unreachable_scheduler_is_named_quickly(cellcognition_file, tmp_path, capsys, monkeypatch):
    t0 = time.perf_counter()
    with (
        pytest.raises(
            ValueError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9 "
        ),
        dask_client(scheduler="tcp://127.0.0.1:9", timeout=1),
    ):
        pass
    assert time.perf_counter() - t0 < 10
    monkeypatch.setattr(dist_mod, "CONNECT_TIMEOUT", 1.0)
    model = save_model(random_model(), tmp_path / "m.pt")
    args = ["encode", str(cellcognition_file), "--model", str(model), "-q"]
    assert main([*args, "--out", str(tmp_path / "f.hdf"), "--scheduler", "tcp://127.0.0.1:9"]) == 1
    one_line_error(capsys.readouterr().err, "cannot reach the Dask scheduler", "127.0.0.1:9")
    assert not (tmp_path / "f.hdf").exists()
    assert main([*args, "--workers", "2", "--scheduler", "tcp://127.0.0.1:9"]) == 2


@pytest.mark.parametrize("address", ["notaurl", "tcp://host", "10.0.0.5:port", "", "tcp://a b:1"])
def test_malformed_scheduler_address_is_refused_at_once(address):
    t0 = time.perf_counter()
    with (
        pytest.raises(ValueError, match="is not a Dask scheduler address: expected tcp://HOST"),
        dask_client(scheduler=address, timeout=5),
    ):
        pass
    assert time.perf_counter() - t0 < 2  # no connection attempt, no hanging client


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("http://127.0.0.1:8786", "unknown scheme 'http://'"),
        ("tcp://127.0.0.1:99999", "the port must be 1 to 65535"),
        ("127.0.0.1:0", "the port must be 1 to 65535"),
    ],
)
def test_unknown_scheme_or_port_is_refused_at_once(address, said):
    # http:// half made a Client that hung for 20 s on exit with a traceback; a port out of
    # range was tried for the whole time-out as though the scheduler were down.
    t0 = time.perf_counter()
    with (
        pytest.raises(ValueError, match=f"is not a Dask scheduler address: {said}"),
        dask_client(scheduler=address, timeout=5),
    ):
        pass
    assert time.perf_counter() - t0 < 2


@pytest.mark.parametrize(
    "address", ["tcp://127.0.0.1:9", "127.0.0.1:9", "tcp://[::1]:9", "tcp://localhost:9"]
)
def test_well_formed_scheduler_addresses_are_tried(address):
    with (
        pytest.raises(ValueError, match="cannot reach the Dask scheduler"),
        dask_client(scheduler=address, timeout=0.5),
    ):
        pass


@pytest.mark.parametrize("greeting", [b"", b"SSH-2.0-OpenSSH_9.6\r\n"])
def test_a_server_that_is_no_scheduler_is_named(greeting):
    # distributed waited for a silent server's greeting for ever (an HTTP server, such as
    # the dashboard's port) and read an SSH banner as a message of exabytes (MemoryError).
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def serve():
        conn, _ = server.accept()
        accepted.append(conn)
        conn.sendall(greeting)

    threading.Thread(target=serve, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    said = []

    def attempt():  # in a thread: were the check gone, this would wait for ever
        try:
            with dask_client(scheduler=address, timeout=0.5):
                said.append(None)
        except ValueError as exc:
            said.append(str(exc))

    with server:
        trying = threading.Thread(target=attempt, daemon=True)
        trying.start()
        trying.join(20)
        assert not trying.is_alive(), "cellae waited for the server's greeting for ever"
    assert said and f"the server at {address} does not answer like a Dask" in said[0]
    for conn in accepted:
        conn.close()


def test_scheduler_without_workers(monkeypatch):
    with (
        LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster,
        pytest.raises(ValueError, match=r"has no workers \(waited 0\.5 s\)"),
        dask_client(scheduler=cluster.scheduler_address, timeout=0.5),
    ):
        pass


def test_a_file_missing_on_a_worker(plate, tmp_path):
    part = plate.parent / "B02_0001.ch5"
    with dask_client(2, processes=False) as client:
        run = cluster_runner(client)

        def missing(tasks, trained, batch_size):
            part.unlink()  # the workers do not find what the client planned with
            return run(tasks, trained, batch_size)

        # the master file's link to the missing file breaks on the first position read
        with pytest.raises(
            ValueError, match=r"failed on a Dask worker: .*a missing file \(.*B02_0001\.ch5\)"
        ):
            encode_stream([plate], random_model(), tmp_path / "f.hdf", runner=missing)
    assert not (tmp_path / "f.hdf").exists() and not list(tmp_path.glob(".f.hdf*"))


def test_a_scheduler_that_goes_away_mid_run_is_said_in_one_line(plate, tmp_path, caplog):
    cluster = LocalCluster(n_workers=1, processes=False, dashboard_address=None)
    with dask_client(scheduler=cluster.scheduler_address, timeout=2) as client:
        run = cluster_runner(client, window=2)

        def lose(tasks, trained, batch_size):
            results = run(tasks, trained, batch_size)
            yield next(results)
            cluster.sync(cluster.scheduler.close)  # as if killed: the client loses it
            yield from results

        with pytest.raises(ValueError) as err:
            encode_stream([plate], random_model(), tmp_path / "f.hdf", runner=lose)
    with contextlib.suppress(Exception):  # its scheduler is gone: close what remains
        cluster.close(timeout=1)
    said = str(err.value)
    # One line (distributed's reason came with a second), that says what happened
    assert "\n" not in said and "lost the connection to the Dask scheduler" in said, said
    assert said.endswith("nothing was written"), said
    # distributed's own log of the lost connection (a traceback) is not shown around it
    assert not [r for r in caplog.records if r.name.startswith("distributed.client")]
    assert not (tmp_path / "f.hdf").exists() and not list(tmp_path.glob(".f.hdf*"))


class DieOnTask(WorkerPlugin):
    """Kill the worker process as soon as it starts encoding task ``index``."""

    def __init__(self, index: int) -> None:
        self.suffix = f"-{index}"

    def transition(self, key, start, finish, **kwargs) -> None:
        name = str(key)
        if (
            finish == "executing"
            and name.startswith("cellae-encode-")
            and name.endswith(self.suffix)
        ):
            os._exit(1)


def test_a_worker_that_dies_mid_run(plate, tmp_path):
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        dask_client(1) as client,
    ):
        client.register_plugin(DieOnTask(2))
        # task 2 kills the worker; task 1 may die with it (its result not yet reported)
        with pytest.raises(
            ValueError, match=r"position A0[23]_0001 of .*: the Dask worker .* died"
        ):
            encode_stream(
                [plate], random_model(), tmp_path / "f.hdf", runner=cluster_runner(client)
            )
    assert not (tmp_path / "f.hdf").exists() and not list(tmp_path.glob(".f.hdf*"))


class DieOnceOnTask(DieOnTask):
    """Kill the worker process the first time it starts task ``index`` (a marker file
    remembers it across the restart)."""

    def __init__(self, index: int, marker: Path) -> None:
        super().__init__(index)
        self.marker = str(marker)

    def transition(self, key, start, finish, **kwargs) -> None:
        if not os.path.exists(self.marker):
            name = str(key)
            if finish == "executing" and name.endswith(self.suffix) and "encode" in name:
                Path(self.marker).touch()
                os._exit(1)


def test_the_only_worker_dying_once_is_retried_with_the_model(plate, tmp_path):
    # The model was scattered: lost with the only worker holding it, every retried position
    # failed as 'cancelled ... already forgotten'.
    trained = random_model()
    serial = encode_stream([plate], trained, tmp_path / "serial.hdf")
    with dask_client(1) as client:
        client.register_plugin(DieOnceOnTask(2, tmp_path / "died"))
        result = encode_stream(
            [plate], trained, tmp_path / "dask.hdf", runner=cluster_runner(client)
        )
    assert (tmp_path / "died").exists()  # the worker did die
    assert result.n_cells == serial.n_cells
    assert_same_file(tmp_path / "dask.hdf", tmp_path / "serial.hdf", atol=1e-5)


def test_cellae_encode_with_two_worker_processes(plate, tmp_path, capsys):
    model = save_model(random_model(), tmp_path / "m.pt")
    args = ["encode", str(plate.parent), "--model", str(model), "-q"]
    assert main([*args, "--out", str(tmp_path / "serial.hdf")]) == 0
    assert main([*args, "--out", str(tmp_path / "dask.hdf"), "--workers", "2"]) == 0
    assert "Encoded 90 cells of 6 position(s)" in capsys.readouterr().out
    assert_same_file(tmp_path / "dask.hdf", tmp_path / "serial.hdf", atol=1e-5)
    np.testing.assert_array_equal(
        read_explorer_hdf(tmp_path / "dask.hdf").bbox["file"][::15],
        [b"A01_0001", b"A02_0001", b"A03_0001", b"B01_0001", b"B02_0001", b"B03_0001"],
    )


def test_warnings_of_workers_are_shown_as_when_encoding_serially(tmp_path):
    wells = ["A01", "A02", "A03"]
    positions = [synthetic_position(w, "0001", seed=i) for i, w in enumerate(wells)]
    positions[1].objects["primary__primary"].label_id[[1, 6]] = 999  # not in the label image
    table = positions[2].objects["primary__primary"]
    table.label_id[1] = table.label_id[0]  # two objects of frame 0 share a label
    folder = tmp_path / "plate" / "hdf5"
    folder.mkdir(parents=True)
    write_cellh5(
        folder / "_all_positions.ch5",
        positions,
        channel_names=["rfp"],
        object_channels={"primary__primary": 0},
        flavour="cellcognition",
        split_files=True,
    )
    model = save_model(random_model(mask="cell"), tmp_path / "m.pt")
    args = ["encode", str(folder), "--model", str(model), "-q"]
    shown = []
    for name, extra in (("serial", []), ("dask", ["--workers", "2"])):
        with pytest.warns(UserWarning) as record:
            assert main([*args, "--out", str(tmp_path / f"{name}.hdf"), *extra]) == 0
        shown.append([str(w.message) for w in record if "_0001" in str(w.message)])
    serial, dask_run = shown
    assert dask_run == serial
    assert len(serial) == 2
    # Summed up over the positions at the end (one line each, not one per position); the
    # second object of the shared label lies outside that label's region.
    assert "3 'primary__primary' object(s) in 2 position(s)" in serial[0]
    assert "A02_0001 (2), A03_0001 (1)" in serial[0] and "left unmasked" in serial[0]
    assert "2 'primary__primary' object(s) in 1 position(s) share their label id" in serial[1]
    assert "A03_0001 (2)" in serial[1]


def test_warnings_of_concurrent_tasks_come_back_once_in_task_order(plate, tmp_path, monkeypatch):
    real = dist_mod.encode_position

    def noisy(task, trained, batch_size):
        warnings.warn("the same on every position", UserWarning, stacklevel=2)
        time.sleep(0.02 * (task.index % 3))  # tasks finish out of order, overlapping
        warnings.warn(f"about {task.position.label}", UserWarning, stacklevel=2)
        return real(task, trained, batch_size)

    monkeypatch.setattr(dist_mod, "encode_position", noisy)
    with dask_client(2, processes=False) as client, pytest.warns(UserWarning) as record:
        hook = warnings.showwarning
        encode_stream(
            [plate], random_model(), tmp_path / "f.hdf", runner=cluster_runner(client, window=4)
        )
        assert warnings.showwarning is hook  # the workers' recording is over
    texts = [str(w.message) for w in record]
    texts = [t for t in texts if t.startswith(("the same", "about"))]
    wells = ["A01", "A02", "A03", "B01", "B02", "B03"]
    assert texts == ["the same on every position"] + [f"about {w}_0001" for w in wells]


def test_bench_scale_runs_tiny():
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale.py"
    args = ["--cells", "2000", "--rate-cells", "2000", "--memory-architecture", "c4.3r_p2_d16.0s"]
    done = subprocess.run(
        [sys.executable, str(bench), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "Dask output equals the serial output (rows, features within 1e-5): yes" in out
    for row in ("Dask, 1 worker(s)", "Dask, 2 worker(s)", "streaming (cellae encode)", "rows/s"):
        assert row in out, row
    assert "10^8 cells, extrapolated" in out and "machines" in out


def test_cells_h5ad_on_two_workers_equals_the_serial_one(plate, tmp_path):
    import anndata as ad

    from napari_cellae.pipeline.cells import run_encode_cells

    trained = random_model()
    serial = run_encode_cells(plate, trained, tmp_path / "serial.h5ad", embedding="pca")
    with dask_client(2, processes=False) as client:
        on_dask = run_encode_cells(
            plate, trained, tmp_path / "dask.h5ad", embedding="pca", runner=cluster_runner(client)
        )
    a, b = ad.read_h5ad(serial.anndata_path), ad.read_h5ad(on_dask.anndata_path)
    assert list(a.obs_names) == list(b.obs_names) and len(a) == 90
    np.testing.assert_allclose(a.X, b.X, atol=1e-5)
