"""Data-parallel training under torchrun (core.ddp, pipeline.torchrun): the ranks' models stay
equal, rank 0 alone writes and prints, one rank equals plain ``cellae train``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import TINY
from napari_cellae.core.ddp import rank_seed, rank_share, torchrun_env

TIMEOUT = 240  # seconds per launch; a tiny run takes ~10 s


MASTER = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


def test_torchrun_env():
    assert torchrun_env({}) is None
    env = torchrun_env(
        {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", **MASTER}
    )
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size) == (3, 4, 1, 2)
    assert not env.is_main
    with pytest.raises(ValueError, match="WORLD_SIZE, LOCAL_RANK not set"):
        torchrun_env({"RANK": "0", **MASTER})
    # the rendezvous address is checked before any work, not when the ranks join
    with pytest.raises(ValueError, match="incomplete: MASTER_ADDR, MASTER_PORT not set"):
        torchrun_env({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    with pytest.raises(ValueError, match="not whole numbers"):
        torchrun_env({"RANK": "x", "WORLD_SIZE": "2", "LOCAL_RANK": "0", **MASTER})
    with pytest.raises(ValueError, match="out of range"):
        torchrun_env({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0", **MASTER})


def test_waiting_for_the_other_ranks_ends_on_sigterm(monkeypatch):
    """torch's rendezvous blocks in C++, where the CLI's Python handlers never run."""
    from napari_cellae.core import ddp

    seen = []
    monkeypatch.setattr(
        ddp.dist,
        "init_process_group",
        lambda *a, **k: seen.append([signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]),
    )
    monkeypatch.setattr(ddp.dist, "destroy_process_group", lambda: None)
    handler = lambda *args: None  # noqa: E731
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        env = torchrun_env({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", **MASTER})
        with ddp.process_group(env, torch.device("cpu")):
            assert signal.getsignal(signal.SIGTERM) is handler  # restored once joined
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [[signal.SIG_DFL, signal.SIG_DFL]]


def test_a_rank_whose_partners_never_come_can_be_stopped(cellcognition_file, tmp_path):
    # torchrun's variables left set in a shell: the process waited 30 minutes for a second
    # rank and ignored SIGTERM and Ctrl-C.
    port = _free_port()
    env = {**_env(1), "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    args = _train_args(cellcognition_file, tmp_path / "model.pt")
    proc = subprocess.Popen(
        [sys.executable, "-m", "napari_cellae", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # rank 0 serves the rendezvous on MASTER_PORT once its crops are cut: then it waits
        deadline = time.monotonic() + TIMEOUT
        while not _listening(port) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGTERM and not (tmp_path / "model.pt").exists()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_rank_share_splits_evenly_and_disjointly():
    shares = [rank_share(103, r, 4, seed=7) for r in range(4)]
    assert [len(s) for s in shares] == [25] * 4  # the last 103 % 4 left out: equal steps
    both = np.concatenate(shares)
    assert len(np.unique(both)) == 100 and both.max() < 103
    assert all(np.all(np.diff(s) > 0) for s in shares)
    np.testing.assert_array_equal(rank_share(103, 1, 4, seed=7), shares[1])  # seeded
    assert not np.array_equal(rank_share(103, 1, 4, seed=8), shares[1])
    np.testing.assert_array_equal(rank_share(5, 0, 1, seed=7), np.arange(5))
    with pytest.raises(ValueError, match="3 training cells cannot be shared by 4"):
        rank_share(3, 0, 4, seed=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs `cellae` in each rank and keeps every rank's result for the test to compare.
_RANK_SCRIPT = """
import json, os, sys
import torch
import napari_cellae.pipeline.torchrun as tr
from napari_cellae.cli import main

real = tr.run_train_torchrun

def keep(*args, **kwargs):
    result = real(*args, **kwargs)
    rank = os.environ["RANK"]
    torch.save(result.trained.model.state_dict(), f"{sys.argv[1]}/rank{rank}.pt")
    with open(f"{sys.argv[1]}/rank{rank}.json", "w") as f:
        json.dump({"model_path": str(result.model_path), "n": [result.n_trained,
                   result.n_held_out], "losses": [[r.train_loss, r.held_out_loss]
                   for r in result.reports]}, f)
    return result

tr.run_train_torchrun = keep
sys.exit(main(sys.argv[2:]))
"""


def _env(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = str(threads)  # equal thread counts give equal weights
    return env


def _torchrun(nproc: int, *args: str, threads: int = 1) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1"]
    launcher += ["--nproc-per-node", str(nproc), "--master-addr", "127.0.0.1"]
    launcher += ["--master-port", str(_free_port())]
    return subprocess.run(
        [*launcher, *args], capture_output=True, text=True, timeout=TIMEOUT, env=_env(threads)
    )


def _train_args(cellh5: Path, out: Path) -> list[str]:
    return [
        "train",
        str(cellh5),
        "--train-on",
        "all",
        *TINY,
        "--batch-size",
        "8",
        "--out",
        str(out),
    ]


def test_two_gloo_ranks_train_one_model_written_once(cellcognition_file, tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text(_RANK_SCRIPT)
    out = tmp_path / "model.pt"
    run = _torchrun(2, str(script), str(tmp_path), *_train_args(cellcognition_file, out))
    assert run.returncode == 0, run.stderr[-3000:]
    # one summary, printed by rank 0
    assert run.stdout.count("Model saved to") == 1 and run.stdout.count("Trained on") == 1
    assert "on 2 process(es) (torchrun)" in run.stdout
    # 30 cells, 15 per rank, 3 of each held out
    assert "Trained on 24 cells, 6 more held out" in run.stdout
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    saved = torch.load(out, weights_only=True)["state_dict"]
    assert all(torch.equal(saved[k], a[k]) for k in a)
    info = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert info[0]["model_path"] == str(out) and info[1]["model_path"] == "None"
    assert info[0]["losses"] == info[1]["losses"] and len(info[0]["losses"]) == 2
    assert info[0]["n"] == [24, 6]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".pt") == [
        "model.pt",
        "rank0.pt",
        "rank1.pt",
    ]


def test_one_rank_equals_plain_cellae_train(cellcognition_file, tmp_path):
    plain, ranked = tmp_path / "plain.pt", tmp_path / "torchrun.pt"
    single = subprocess.run(
        [sys.executable, "-m", "napari_cellae", *_train_args(cellcognition_file, plain)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env(2),
    )
    assert single.returncode == 0, single.stderr[-3000:]
    run = _torchrun(1, "-m", "napari_cellae", *_train_args(cellcognition_file, ranked), threads=2)
    assert run.returncode == 0, run.stderr[-3000:]
    a = torch.load(plain, weights_only=True)
    b = torch.load(ranked, weights_only=True)
    assert a["config"] == b["config"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    summary = [line for line in single.stdout.splitlines() if line.startswith("Trained on")]
    assert summary and summary[0].split(";")[0] in run.stdout  # same cells, same losses


def test_ranks_started_with_other_settings_are_refused_alike(cellcognition_file, tmp_path):
    # One node's command said --epochs 3: gloo aborted rank 0 ('collective mismatch') and
    # rank 1 ended in a traceback.
    script = tmp_path / "unlike.py"
    script.write_text(
        "import os, sys\nfrom napari_cellae.cli import main\nargs = sys.argv[1:]\n"
        "if os.environ['RANK'] == '1':\n    args += ['--epochs', '3']\nsys.exit(main(args))\n"
    )
    out = tmp_path / "model.pt"
    run = _torchrun(2, str(script), *_train_args(cellcognition_file, out))
    assert run.returncode != 0 and not out.exists()
    # torchrun's own report of a failed child is a traceback; the ranks' are not
    assert "EnforceNotMet" not in run.stderr, run.stderr[-3000:]
    assert "napari_cellae/" not in run.stderr, run.stderr[-3000:]
    said = [line for line in run.stderr.splitlines() if "cellae: error:" in line]
    # every rank says it, unless torchrun ends the other on the first one's exit
    assert said, run.stderr[-3000:]
    assert all("rank 1 differs from rank 0 in epochs: 2 / 3" in line for line in said)


def test_a_channel_the_file_lacks_is_refused_before_the_ranks_bar(cellcognition_file, tmp_path):
    # Under torchrun the error came below a 'training: 0%' bar, as it had for cellae train.
    out = tmp_path / "model.pt"
    args = [*_train_args(cellcognition_file, out), "--channel", "1"]
    run = _torchrun(1, "-m", "napari_cellae", *args)
    assert run.returncode != 0 and not out.exists()
    said = [line for line in run.stderr.splitlines() if "cellae: error:" in line]
    assert said and "has no channel '1' (channels: 0=rfp)" in said[0], run.stderr[-3000:]
    assert "training:" not in run.stderr and "%|" not in run.stderr, run.stderr[-3000:]


def test_a_rank_that_dies_mid_training_leaves_the_others_one_line(cellcognition_file, tmp_path):
    # Rank 0 printed gloo's traceback ('RuntimeError: ... Connection reset by peer') when
    # rank 1 was killed during training.
    script = tmp_path / "dies.py"
    script.write_text(
        "import os, sys\nimport napari_cellae.core.ddp as ddp\nfrom napari_cellae.cli import main\n"
        "real = ddp.reduce_report\n"
        "def dying(*args, **kwargs):\n"
        "    if os.environ['RANK'] == '1':\n        os._exit(9)  # as if killed\n"
        "    return real(*args, **kwargs)\n"
        "ddp.reduce_report = dying\nsys.exit(main(sys.argv[1:]))\n"
    )
    out = tmp_path / "model.pt"
    # torchrun looks at its ranks every 5 s: rank 0 meets the loss first, not its SIGTERM
    run = _torchrun(
        2, "--monitor-interval", "5", str(script), *_train_args(cellcognition_file, out)
    )
    assert run.returncode != 0 and not out.exists()
    assert "napari_cellae/" not in run.stderr and "[rank0]" not in run.stderr, run.stderr[-3000:]
    said = [line for line in run.stderr.splitlines() if "cellae: error:" in line]
    assert len(said) == 1, run.stderr[-3000:]
    assert "rank 0 of 2 lost the other torchrun processes" in said[0], said
    assert "no model was written" in said[0] and "This is typically" not in said[0]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".model", "model"))]


def test_ranks_that_read_other_copies_of_the_file_are_refused(tmp_path):
    # A stale copy on one node, of as many cells: each rank trained on other cells, silently.
    from conftest import synthetic_position
    from napari_cellae.io.cellh5_writer import write_cellh5

    files = []
    for name, brighter in (("s.ch5", 0), ("stale.ch5", 7)):
        positions = [synthetic_position(w, "1", seed=i) for i, w in enumerate(["A01", "B02"])]
        for position in positions:
            position.image[...] += brighter
        files.append(write_cellh5(tmp_path / name, positions, ["rfp"], {"primary__primary": 0}))
    script = tmp_path / "stale.py"
    script.write_text(
        "import os, sys\nfrom napari_cellae.cli import main\nargs = sys.argv[1:]\n"
        "if os.environ['RANK'] == '1':\n"
        "    args = [a.replace('s.ch5', 'stale.ch5') for a in args]\n"
        "sys.exit(main(args))\n"
    )
    out = tmp_path / "model.pt"
    run = _torchrun(2, str(script), *_train_args(files[0], out))
    assert run.returncode != 0 and not out.exists(), run.stdout
    said = [line for line in run.stderr.splitlines() if "cellae: error:" in line]
    assert said and all("rank 1 differs from rank 0 in training cells' pixels" in s for s in said)


def test_a_warning_is_said_once_not_once_per_rank(tmp_path):
    # Every rank reads the same files and warned alike: 'cellae: warning: ... without
    # signal' came twice from two ranks.
    from conftest import synthetic_position
    from napari_cellae.io.cellh5_writer import write_cellh5

    positions = [synthetic_position(w, "1", seed=i) for i, w in enumerate(["A01", "B02"])]
    positions[1].image[...] = 0  # never imaged
    cellh5 = write_cellh5(tmp_path / "s.ch5", positions, ["rfp"], {"primary__primary": 0})
    out = tmp_path / "model.pt"
    run = _torchrun(2, "-m", "napari_cellae", *_train_args(cellh5, out))
    assert run.returncode == 0, run.stderr[-3000:]
    # (counted in the text: rank 0's progress bar shares a line with a warning)
    assert run.stderr.count("cellae: warning:") == 1, run.stderr[-3000:]
    assert run.stderr.count("have crops without signal") == 1
    assert "Trained on 12 cells, 2 more held out" in run.stdout  # A01: 7 per rank, B02 out


def test_rank_seeds_stay_seeds_every_library_takes():
    # seed + rank went past 2**32 - 1, the largest seed a run may be given
    assert [rank_seed(7, r) for r in range(3)] == [7, 8, 9]
    assert rank_seed(2**32 - 1, 0) == 2**32 - 1
    assert rank_seed(2**32 - 1, 1) == 0
