"""What the training loop reports: one :class:`EpochReport` per epoch, or
:class:`TrainingDiverged` when the loss leaves the numbers."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EpochReport", "TrainingDiverged"]


@dataclass
class EpochReport:
    """Progress of one epoch.

    Attributes
    ----------
    epoch : int
        1-based epoch number (for a stop before any batch: the last finished epoch).
    epochs : int
        Planned number of epochs.
    train_loss : float
        Mean training MSE over the epoch's batches (on corrupted input, dropout active).
    held_out_loss : float
        MSE on the held-out crops (clean input, eval mode); NaN if nothing is held out.
    seconds : float
        Wall time of the epoch including the held-out evaluation.
    samples_per_second : float
        Training crops per second (training steps only).
    stopped : bool
        True for the final report after :meth:`Trainer.stop`.
    collapsed : bool
        True when the network gives (nearly) the same reconstruction for every held-out
        cell: it has stopped learning anything cell-specific (typically every ReLU died
        after too large a step), so its features cannot separate cells.
        :data:`~napari_cellae.core.config.COLLAPSE_ADVICE` says what to do.
    """

    epoch: int
    epochs: int
    train_loss: float
    held_out_loss: float
    seconds: float
    samples_per_second: float
    stopped: bool = False
    collapsed: bool = False


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good weights were restored.

    Parameters
    ----------
    problem : str
        What happened and what to try.
    kept : str
        What became of the model's weights (said after ``problem``); a caller that keeps
        no model (the command line) reports ``problem`` alone.
    """

    def __init__(self, problem: str, kept: str = "") -> None:
        # two sentences: '... (e.g. 0.001). The weights of the last good epoch ...'
        super().__init__(f"{problem}. {kept}" if kept else problem)
        self.problem = problem
