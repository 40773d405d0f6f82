"""What each training parameter does and when to change it, in a biologist's words.

One text per :class:`~napari_cellae.core.training.TrainConfig` field, shared by the ``cellae``
command's ``--help`` and the widget's tooltips. Plain strings only (no torch, no Qt), so
both can show them without importing the engine.
"""

from __future__ import annotations

__all__ = ["PARAMETER_GUIDE"]

PARAMETER_GUIDE: dict[str, str] = {
    "crop_size": "Cell size: edge of the square box (in pixels) cut around every cell centre. "
    "It should hold one whole cell with a little margin of background; too small cuts cells "
    "off, too large includes neighbours and trains slower.",
    "architecture": "Layers of the autoencoder (advanced). 'c16.5r' = 16 filters of 5x5 "
    "pixels, 'p2' = halve the image (pooling), 'd256.1r' = 256 units after 10% dropout; the "
    "size of the last dense layer is the number of features per cell. Keep the default "
    "unless you have a reason.",
    "optimizer": "How the weights are updated: AdaGrad adapts its step size by itself and "
    "needs little tuning; Nesterov momentum can be faster but is more sensitive to the "
    "learning rate.",
    "learning_rate": "Size of each learning step. 0.01-0.1 is a good range. Lower it (e.g. "
    "halve it) if the loss jumps up and down or becomes NaN, or if every reconstruction "
    "looks the same; raise it if the loss falls very slowly.",
    "momentum": "Only for Nesterov momentum: how much of the previous step carries over "
    "(0-1). 0.9 works well; lower it if training is unstable.",
    "batch_size": "Minibatch: cells looked at before each weight update. 32-256 is typical; "
    "smaller makes more (noisier) updates per epoch, larger is smoother and faster per cell.",
    "corruption": "Fraction of pixels blanked at random in each training image (denoising). "
    "0-0.3 makes the features robust to noise and small artefacts; 0 trains a plain "
    "autoencoder.",
    "epochs": "How often every training cell is shown to the network. 64-1000: more gives a "
    "better fit but takes longer; watch the held-out loss: once it stops falling, more "
    "epochs do not help.",
    "samples": "At most this many cells (drawn at random) are used for training. More cells "
    "cover more of the natural variation; fewer train faster.",
    "train_on": "'controls': learn only from negative-control positions (marked in the "
    "position mapping), so the features describe normal cell-to-cell variation and unusual "
    "phenotypes stand out; 'all': learn from every cell.",
    "augment": "Show each training cell turned by a random multiple of 90 degrees and "
    "possibly mirrored. Cells have no preferred orientation, so this gives the network more "
    "examples at no cost; the cells you analyse are never turned. Useful when there are few "
    "training cells (the held-out loss rises while the training loss still falls).",
    "held_out_fraction": "Fraction of the training cells kept aside to check the model on "
    "cells it did not learn from (the held-out loss).",
    "seed": "Random seed; the same seed and data give the same model.",
    "device": "Where to compute: auto (a GPU if there is one), cpu or cuda.",
}
