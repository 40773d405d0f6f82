"""A CPU training step in shards: one batch split into parts trained in parallel threads.

The split follows the batch size alone, never the number of cores, and every shard runs in
one thread: the same seed then gives the same weights, bit for bit, with one thread or many
(``OMP_NUM_THREADS``, a container's CPU limit, the widget that leaves a core to the
viewer). When the shards followed the cores, each core count drew its own dropout masks
and rounded its own way, and training amplified the difference (the demo's weights
differed by 0.46 after two epochs with one thread or two).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

__all__ = ["MIN_SHARD", "shard_count", "shard_pool", "sharded_step"]

# A batch is split into shards of about this many crops (two halves of a smaller batch of
# 32 or more, so that two cores share it), each shard's forward and backward pass running
# in its own single-threaded worker (gradients summed in a fixed order). Small tensors
# spread over cores by intra-op threading spend much of their time synchronising (and
# spin idle on cores other jobs hold); whole shards per core do not (docs/performance.md).
MIN_SHARD = 32


def shard_count(batch: int) -> int:
    """Shards a batch of ``batch`` crops is split into (at least 1), whatever the cores.

    Parameters
    ----------
    batch : int

    Returns
    -------
    int
    """
    return max(1, batch // MIN_SHARD, min(2, batch // (MIN_SHARD // 2)))


def shard_pool(workers: int) -> ThreadPoolExecutor | None:
    """Single-threaded workers that train the shards of a batch.

    Parameters
    ----------
    workers : int
        Shards trained at once: ``min(cores, shards)``.

    Returns
    -------
    ThreadPoolExecutor or None
        None for one worker (the shards run in the calling thread, in turn); shut it down
        when done.
    """
    if workers <= 1:
        return None
    return ThreadPoolExecutor(
        workers, thread_name_prefix="cellae-shard", initializer=torch.set_num_threads, initargs=(1,)
    )


def sharded_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    inp: torch.Tensor,
    target: torch.Tensor,
    shard_gens: list[torch.Generator],
    pool: ThreadPoolExecutor | None,
) -> float:
    """One optimiser step on a batch, split into shards trained in parallel on ``pool``.

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(x, generator)`` (the generator drives dropout).
    optimizer : torch.optim.Optimizer
    inp, target : Tensor (n, C, S, S)
        Network input (possibly corrupted) and the clean target.
    shard_gens : list of torch.Generator
        One per shard of a whole batch (one: the batch is not split, as on a GPU).
    pool : ThreadPoolExecutor or None
        None: the shards in turn in the calling thread.

    Returns
    -------
    float
        The batch's mean squared error (before the step).
    """
    shards = min(len(shard_gens), shard_count(target.shape[0]))  # a short last batch: fewer
    if shards == 1:
        optimizer.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(inp, shard_gens[0]), target)
        loss.backward()
        optimizer.step()
        return loss.item()
    params = [p for p in model.parameters() if p.requires_grad]
    n_values = target.numel()

    def shard(part: tuple[torch.Tensor, torch.Tensor, torch.Generator]) -> tuple:
        x, t, g = part
        loss = F.mse_loss(model(x, g), t, reduction="sum") / n_values
        return loss.detach(), torch.autograd.grad(loss, params)

    parts = zip(
        inp.tensor_split(shards), target.tensor_split(shards), shard_gens[:shards], strict=True
    )
    results = list(pool.map(shard, parts) if pool is not None else map(shard, parts))
    for k, param in enumerate(params):
        grad = results[0][1][k]
        for _, grads in results[1:]:
            grad.add_(grads[k])  # fixed order: equal seeds give equal weights
        if grad.stride() != param.stride():
            # backward() lays .grad out like its parameter (channels_last here) and the
            # fused optimiser kernels rely on it; autograd.grad gives no such promise.
            grad = torch.empty_like(param).copy_(grad)
        param.grad = grad
    optimizer.step()
    return float(sum(loss for loss, _ in results))
