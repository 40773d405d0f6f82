"""Training run of one rank of ``torchrun --nproc-per-node N -m napari_cellae train ...``.

Every rank reads the file and selects the training crops as :func:`run_train` does, then
trains on its share (:func:`~napari_cellae.core.ddp.rank_share`) with the gradients averaged
over the ranks at every step (:mod:`napari_cellae.core.ddp`). All ranks use the intensity
scaling that rank 0's trainer chooses. Each rank holds out its own ``held_out_fraction`` of
its share; the held-out loss is averaged over all held-out cells. Rank 0 saves the model.
One rank gives exactly the model of :func:`run_train`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.pipeline.results import RunResult
from napari_cellae.pipeline.runs import training_crops, training_inputs
from napari_cellae.pipeline.steps import check_outputs, training_indices

if TYPE_CHECKING:
    from napari_cellae.core.config import TrainConfig
    from napari_cellae.core.ddp import TorchrunEnv
    from napari_cellae.core.trainer import EpochReport

__all__ = ["run_train_torchrun"]


def _digest(pixels: np.ndarray) -> str:
    """A short fingerprint of the training crops, compared between the ranks."""
    return hashlib.blake2b(np.ascontiguousarray(pixels).data, digest_size=8).hexdigest()


def run_train_torchrun(
    cellh5_path: str | os.PathLike | Sequence[str | os.PathLike],
    config: TrainConfig,
    env: TorchrunEnv,
    mapping_path: str | os.PathLike | None = None,
    object_name: str | None = None,
    channels: Sequence[str | int] | None = None,
    out: str | os.PathLike | None = None,
    control_token: str = "neg",
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> RunResult:
    """Train data-parallel as rank ``env.rank`` of ``env.world_size``; rank 0 saves.

    Parameters
    ----------
    cellh5_path, config, mapping_path, object_name, channels, control_token
        As for :func:`napari_cellae.pipeline.runs.run_train`.
    env : TorchrunEnv
        This process's place (:func:`napari_cellae.core.ddp.torchrun_env`).
    out : path-like, optional
        Model file, written by rank 0 only.
    on_epoch : callable, optional
        Called with every epoch's report, reduced over the ranks (equal on all ranks).

    Returns
    -------
    RunResult
        On every rank the same model; ``reports``, ``n_trained`` and ``n_held_out`` count
        all ranks; ``model_path`` is set on rank 0 only.

    Raises
    ------
    ValueError
        User errors, as :func:`run_train`; also fewer training cells than ranks.
    """
    from napari_cellae.core import ddp
    from napari_cellae.core.model_file import check_replaceable, save_model
    from napari_cellae.core.trainer import Trainer

    inputs = training_inputs(cellh5_path, mapping_path) if out is not None else []
    if out is not None:  # the plates' files are listed once, for the check and the model
        check_outputs([(out, "model")], inputs)
        check_replaceable(out)  # a model is never written over a file of another kind
    crops, mapping, n_cells = training_crops(  # only the cells drawn: bounded memory
        cellh5_path, config, mapping_path, object_name, channels, control_token, True
    )
    config, idx = training_indices(crops, mapping, config)  # as make_trainer does
    local = ddp.rank_share(len(idx), env.rank, env.world_size, config.seed)
    selected = np.ascontiguousarray(crops.crops[idx[local]])

    device = ddp.rank_device(env, config.device)
    reports: list[EpochReport] = []
    with ddp.process_group(env, device):
        ddp.check_same_run(
            {
                **config.to_dict(),
                "training cells": len(idx),
                "object": crops.object_name,
                "channels": list(crops.channel_names),
                # Other copies of the files (a stale one on one node) of as many cells
                # trained each rank on other cells, silently.
                "cells in the input": n_cells,
                "training cells' pixels (digest)": _digest(crops.crops[idx]),
            },
            env,
        )
        # Rank 0's trainer chooses the intensity scaling (from a sample of its share, as
        # the trainer always does) and every rank uses it.
        normalisation = None if env.is_main else ddp.broadcast_object(None)
        # Own batch order, corruption and dropout per rank; weights from rank 0.
        trainer = Trainer(
            replace(config, seed=ddp.rank_seed(config.seed, env.rank)),
            selected,
            normalisation,
            channel_names=list(crops.channel_names),
            object_name=crops.object_name,
            source_indices=idx[local],
        )
        if env.is_main:
            ddp.broadcast_object(trainer.normalisation)
        ddp.broadcast_weights(trainer.model)
        ddp.average_gradients(trainer.optimizer, env.world_size)
        for report in trainer.run():
            report = ddp.reduce_report(
                report, trainer.n_train, trainer.n_held_out, env.world_size, device
            )
            reports.append(report)
            if on_epoch is not None:
                on_epoch(report)
        n_trained, n_held_out = (
            int(v) for v in ddp.sum_over_ranks([trainer.n_train, trainer.n_held_out], device)
        )
    trained = trainer.result()
    trained.config = config
    model_path = None
    if out is not None and env.is_main:
        model_path = save_model(trained, out, inputs)
    return RunResult(
        trained=trained,
        crops=crops,
        mapping=mapping,
        reports=reports,
        n_cells=n_cells,
        n_trained=n_trained,
        n_held_out=n_held_out,
        model_path=model_path,
    )
