"""The training loop: a generator of one typed report per epoch.

:meth:`Trainer.run` yields an :class:`EpochReport` after every epoch; the CLI wraps it in a
progress bar, the widget in a thread worker, tests drive it directly. Crops stay in ONE
tensor of their stored dtype (uint8 / uint16, shared with the caller's array, never copied
to float as a whole); each minibatch is gathered with a seeded permutation, converted and
normalised on the fly into a ``channels_last`` float tensor.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_cellae.core.config import TrainConfig
from napari_cellae.core.decorrelation import decorrelate_filters
from napari_cellae.core.epochs import EpochReport, TrainingDiverged
from napari_cellae.core.model import ConvAutoencoder, keep_mask
from napari_cellae.core.model_file import EVAL_BATCH, TrainedModel
from napari_cellae.core.normalisation import Normalisation, is_wide
from napari_cellae.core.optimisation import (
    check_crops,
    crops_tensor,
    default_threads,
    glorot_init,
    make_optimizer,
    random_orientation,
    resolve_device,
    scaled_crops,
    scaling_tensors,
    shard_count,
    shard_pool,
    sharded_step,
    spread,
    thread_count,
)
from napari_cellae.core.revival import revive_silent_filters

__all__ = ["EpochReport", "Trainer", "TrainingDiverged"]

# A collapsed network's reconstructions vary across cells less than this fraction of how
# much the cells themselves vary. Measured on the demo: dead networks 3e-9 (rounding
# only), learning ones from 8e-5 (early epochs, while they fit the mean cell) up to ~0.5.
_COLLAPSE_SPREAD = 1e-6
# Training cells judged instead where none are held out (one evaluation batch's worth).
_COLLAPSE_CELLS = EVAL_BATCH


class Trainer:
    """Train an autoencoder on crops; iterate :meth:`run` for one report per epoch.

    Parameters
    ----------
    config : TrainConfig
        ``samples`` and ``train_on`` are not read here: the caller chooses the crops
        (:func:`napari_cellae.pipeline.steps.select_training`).
    crops : ndarray (N, C, S, S)
        The crops to train on (a ``held_out_fraction`` of them is held out), in their
        stored dtype. Held by reference (no copy for C-contiguous uint8, uint16, int16 and
        float32 arrays; 32- and 64-bit pixels are scaled into a float32 copy); do not
        modify them while training.
    normalisation : Normalisation, optional
        Default: chosen from the crops with :meth:`Normalisation.from_crops`.
    channel_names : list of str, optional
        Stored with the model (default ``["channel 1", ...]``).
    object_name : str
        Stored with the model.
    source_indices : ndarray of int, optional
        Where each crop came from, e.g. its row in a :class:`~napari_cellae.core.crops.CropSet`
        (default: ``0 .. N-1``); kept as :attr:`source_indices` for reports.
    """

    def __init__(
        self,
        config: TrainConfig,
        crops: np.ndarray,
        normalisation: Normalisation | None = None,
        *,
        channel_names: list[str] | None = None,
        object_name: str = "",
        source_indices: np.ndarray | None = None,
    ) -> None:
        config.validate()
        self.config = config
        crops = check_crops(crops, config.network_size)
        n_channels = crops.shape[1]
        if normalisation is None:
            normalisation = Normalisation.from_crops(
                crops, seed=config.seed, per_cell=config.intensity == "cell"
            )
        if normalisation.n_channels != n_channels:
            raise ValueError(
                f"normalisation has {normalisation.n_channels} channel(s), crops have {n_channels}"
            )
        self.normalisation = normalisation
        self.channel_names = (
            list(channel_names)
            if channel_names is not None
            else [f"channel {i + 1}" for i in range(n_channels)]
        )
        self.object_name = object_name
        self.source_indices = (
            np.arange(len(crops)) if source_indices is None else np.asarray(source_indices)
        )
        if self.source_indices.shape != (len(crops),):
            raise ValueError(
                f"source_indices has shape {self.source_indices.shape}, expected ({len(crops)},)"
            )
        self.device = resolve_device(config.device)

        # Held-out split: fixed for a seed, independent of the device.
        n = crops.shape[0]
        n_held = min(round(n * config.held_out_fraction), n - 1)
        split = np.random.default_rng(config.seed).permutation(n)
        self._held_idx = torch.from_numpy(np.sort(split[:n_held]).astype(np.int64))
        self._train_idx = torch.from_numpy(np.sort(split[n_held:]).astype(np.int64))

        # Per-crop scale tensors, gathered with each batch (see _batch).
        self._per_crop = normalisation.per_cell
        batch_scaling = normalisation
        if is_wide(crops):
            # float32 rounds 32- and 64-bit pixels (a small range on a large base lost its
            # grey levels): they are scaled once, exactly, and the batches taken as they are.
            crops = scaled_crops(normalisation, crops)
            batch_scaling = Normalisation([0.0] * n_channels, [1.0] * n_channels)
            self._per_crop = False
        self._data = crops_tensor(crops, self.device)
        if self.device.type != "cpu":
            self._train_idx = self._train_idx.to(self.device)
            self._held_idx = self._held_idx.to(self.device)
        self._scale, self._offset = scaling_tensors(batch_scaling, crops, self.device)

        with torch.random.fork_rng(devices=[]):  # seeded init without touching global state
            torch.manual_seed(config.seed)
            model = ConvAutoencoder(config.architecture, config.network_size, n_channels)
            glorot_init(model)
        # channels_last: oneDNN / cuDNN convolutions run markedly faster (docs/performance.md).
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.optimizer = make_optimizer(config, list(self.model.parameters()))
        self._held_out_spread: float | None = None  # of the held-out cells, see _evaluate
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards weights during a step vs result()
        self._started = False
        self.epochs_done = 0
        self.revived = 0  # filters given new weights (config.revive)

    @property
    def n_train(self) -> int:
        """Number of training crops."""
        return int(self._train_idx.numel())

    @property
    def n_held_out(self) -> int:
        """Number of held-out crops."""
        return int(self._held_idx.numel())

    def stop(self) -> None:
        """Ask :meth:`run` to stop before its next batch (safe from any thread)."""
        self._stop.set()

    def _batch(self, idx: torch.Tensor) -> torch.Tensor:
        """Gather crops by index and normalise them into a channels_last float32 batch."""
        raw = self._data.index_select(0, idx)
        scale, offset = self._scale, self._offset
        if self._per_crop:
            scale, offset = scale.index_select(0, idx), offset.index_select(0, idx)
        x = torch.empty(
            raw.shape, dtype=torch.float32, device=self.device, memory_format=torch.channels_last
        )
        # One fused pass: x = raw * scale + offset (the dtype conversion happens inside).
        torch.addcmul(offset, raw, scale, out=x)
        return x.clamp_(0.0, 1.0)

    def _evaluate(self) -> tuple[float, bool]:
        """Held-out MSE (NaN if nothing is held out) and whether the network collapsed,
        judged on the held-out cells or, where none are held out, on up to
        :data:`_COLLAPSE_CELLS` training cells (a run of one or two cells, or
        ``held_out_fraction`` 0, reported dead units as healthy)."""
        n_held = self.n_held_out
        judged = self._held_idx if n_held else self._train_idx[:_COLLAPSE_CELLS]
        n = int(judged.numel())
        self.model.eval()
        total = 0.0
        # Per-pixel sums over cells of the reconstructions, for their spread; the inputs'
        # spread only on the first call (the held-out cells never change).
        with_inputs = self._held_out_spread is None
        moments = torch.zeros(
            4 if with_inputs else 2, *self._data.shape[1:], dtype=torch.float64, device=self.device
        )
        with torch.inference_mode():
            for start in range(0, n, EVAL_BATCH):
                x = self._batch(judged[start : start + EVAL_BATCH])
                y = self.model(x)
                total += F.mse_loss(y, x, reduction="sum").item()
                y = y.double()  # float32 squares would swamp a 1e-6 spread
                values = [y, y * y]
                if with_inputs:
                    x = x.double()
                    values += [x, x * x]
                for k, value in enumerate(values):
                    moments[k] += value.sum(0)
        self.model.train()
        if with_inputs:
            self._held_out_spread = spread(moments[2], moments[3], n)
        cells, reconstructions = self._held_out_spread, spread(moments[0], moments[1], n)
        collapsed = cells > 0 and reconstructions < _COLLAPSE_SPREAD * cells
        return (total / (n * self._data[0].numel()) if n_held else math.nan), collapsed

    def _snapshot(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return (
            {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            copy.deepcopy(self.optimizer.state_dict()),
        )

    def _restore(self, snap: tuple[dict[str, torch.Tensor], dict[str, Any]]) -> None:
        with self._lock:
            self.model.load_state_dict(snap[0])
            self.optimizer.load_state_dict(snap[1])

    def _diverged(self, epoch: int) -> TrainingDiverged:
        lr = float(self.optimizer.param_groups[0]["lr"])
        return TrainingDiverged(
            f"training diverged in epoch {epoch} (loss became NaN or infinite) with learning "
            f"rate {lr:g}; try a lower learning rate (e.g. {lr / 10:g})",
            f"The weights of the last good epoch ({self.epochs_done}) were kept.",
        )

    def run(self) -> Iterator[EpochReport]:
        """Train, yielding one :class:`EpochReport` per epoch.

        All randomness (batch order, corruption, dropout) comes from generators seeded with
        ``config.seed``, so equal seeds give equal weights on the CPU, whatever the number of
        threads; torch's global RNG is not touched. On a CPU each batch is split into shards
        of a number set by the batch size, each trained in one thread, in parallel where
        there are several threads (see :func:`~napari_cellae.core.shards.sharded_step`).

        Yields
        ------
        EpochReport
            After every epoch; after :meth:`stop`, one final report with ``stopped=True``.

        Raises
        ------
        TrainingDiverged
            If a loss becomes NaN/inf; the weights of the last finished epoch are restored.
        """
        if self._started:
            raise RuntimeError("Trainer.run() can only be used once; create a new Trainer")
        self._started = True
        cfg = self.config
        shards, workers = 1, 1
        if self.device.type == "cpu":
            default_threads()
            shards = shard_count(cfg.batch_size)  # never from the cores: see core.shards
            workers = min(torch.get_num_threads(), shards)
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        # One dropout generator per shard, seeded from the run's: reproducible whatever
        # order the shard threads draw in, and torch's global RNG is left alone.
        shard_gens = [
            torch.Generator(device=self.device).manual_seed(
                int(torch.randint(2**62, (1,), generator=gen, device=self.device))
            )
            for _ in range(shards)
        ]
        pool = shard_pool(workers)
        try:
            yield from self._epochs(gen, shard_gens, pool)
        finally:
            if pool is not None:
                pool.shutdown()

    def _one_thread(self) -> contextlib.AbstractContextManager:
        """One torch thread for this thread on a CPU (nothing on a GPU)."""
        return thread_count(1) if self.device.type == "cpu" else contextlib.nullcontext()

    def _revive(self, epoch: int) -> None:
        """New weights for silent filters, judged on up to 512 training crops spread over
        the set, drawn from a generator seeded by seed and epoch (under torchrun, rank 0's)."""
        n = self.n_train
        picks = torch.linspace(0, n - 1, min(n, 512), device=self.device).long()
        seed = (self.config.seed * 7919 + epoch) % 2**64  # a 64-bit seed whatever the seed
        gen = torch.Generator(device=self.device).manual_seed(seed)
        with self._lock:
            sample = self._batch(self._train_idx[picks])
            self.revived += revive_silent_filters(self.model, sample, self.optimizer, gen)

    def _step(
        self,
        inp: torch.Tensor,
        target: torch.Tensor,
        shard_gens: list[torch.Generator],
        pool: ThreadPoolExecutor | None,
    ) -> float:
        """One optimiser step on a batch (in shards on ``pool``); returns the batch's MSE."""
        return sharded_step(self.model, self.optimizer, inp, target, shard_gens, pool)

    def _epochs(
        self,
        gen: torch.Generator,
        shard_gens: list[torch.Generator],
        pool: ThreadPoolExecutor | None,
    ) -> Iterator[EpochReport]:
        cfg = self.config
        corrupt = cfg.corruption > 0
        bs = cfg.batch_size
        model = self.model
        model.train()
        last_train_loss = math.nan

        for epoch in range(1, cfg.epochs + 1):
            snap = self._snapshot()  # last good weights, restored on divergence
            t0 = time.perf_counter()
            order = self._train_idx[torch.randperm(self.n_train, generator=gen, device=self.device)]
            loss_sum, seen, stopped = 0.0, 0, False
            # On a CPU every step runs in one thread per shard (the same rounding whatever
            # the cores); this one gathers batches and waits, or trains the shards itself.
            with self._one_thread():
                for start in range(0, self.n_train, bs):
                    if self._stop.is_set():
                        stopped = True
                        break
                    x = self._batch(order[start : start + bs])
                    if cfg.augment:
                        x = random_orientation(x, gen)
                    if corrupt:
                        # Masking noise on the input only; the target stays clean.
                        inp = torch.where(keep_mask(x.shape, cfg.corruption, gen, x.device), x, 0.0)
                    else:
                        inp = x
                    with self._lock:
                        value = self._step(inp, x, shard_gens, pool)
                        decorrelate_filters(model, cfg.decorrelation)
                    if not math.isfinite(value):
                        self._restore(snap)
                        raise self._diverged(epoch)
                    loss_sum += value * x.shape[0]
                    seen += x.shape[0]
            train_seconds = time.perf_counter() - t0
            if cfg.revive and not stopped:
                with self._one_thread():  # judged as the weights were made: thread-count-free
                    self._revive(epoch)

            if stopped and seen == 0:
                # Stopped between epochs: report the state of the last finished epoch.
                report_epoch, train_loss = epoch - 1, last_train_loss
            else:
                report_epoch, train_loss = epoch, loss_sum / seen
            finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
            held, collapsed = self._evaluate() if finite else (math.nan, False)
            if not finite or (self.n_held_out and not math.isfinite(held)):
                self._restore(snap)
                raise self._diverged(epoch)
            if not stopped:
                self.epochs_done = epoch
            last_train_loss = train_loss
            report = EpochReport(
                epoch=report_epoch,
                epochs=cfg.epochs,
                train_loss=float(train_loss),
                held_out_loss=float(held),
                seconds=time.perf_counter() - t0,
                samples_per_second=seen / train_seconds if train_seconds > 0 and seen else 0.0,
                stopped=stopped,
                collapsed=collapsed,
            )
            yield report
            if stopped:
                return

    def result(self) -> TrainedModel:
        """The current model (a CPU copy in eval mode), usable at any time.

        Returns
        -------
        TrainedModel
        """
        with self._lock:
            model = copy.deepcopy(self.model)
        model = model.to("cpu", memory_format=torch.contiguous_format).eval()
        return TrainedModel(
            model=model,
            config=copy.deepcopy(self.config),
            normalisation=copy.deepcopy(self.normalisation),
            channel_names=list(self.channel_names),
            object_name=self.object_name,
        )
