"""Stopping rules for :func:`imcflow.train.fit` (its ``stop`` argument) and the validation split they
read.

A stopping rule must never read the test set: :func:`split_validation` holds out a seeded fraction
of the *training* images, and ``fit(model, train, val, config, stop=Plateau(patience))`` evaluates
that split after every epoch and stops once it has not improved for ``patience`` epochs; the
configuration's ``epochs`` is the budget. The model is the last epoch's (at most ``patience``
epochs past the best one).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from imcflow.errors import ConfigError, check_int


def split_validation(dataset: Any, fraction: float, seed: int = 0) -> tuple[Any, Any]:
    """``(train, val)``: ``val`` is ``round(fraction * n)`` images of ``dataset`` picked by a
    permutation seeded with ``seed`` (``numpy.random.default_rng(seed + 7919)``, so it is not the
    permutation :func:`~imcflow.train.load_dataset` uses for ``subset``), ``train`` the rest, both in
    their original order and carrying the dataset's info. ``fraction = 0`` returns ``(dataset, None)``.

    >>> from imcflow.train import load_dataset
    >>> train, val = split_validation(load_dataset("synthetic", subset=100), 0.1, seed=0)
    >>> len(train), len(val), val.split
    (90, 10, 'val')
    """
    if not isinstance(fraction, (int, float)) or not 0.0 <= fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {fraction!r}")
    if fraction == 0:
        return dataset, None
    x, y = dataset.tensors[:2]
    n = len(y)
    k = int(round(fraction * n))
    if k < 1 or n - k < 2:
        raise ConfigError(f"val_fraction={fraction} of {n} training images leaves {k} for validation "
                          f"and {n - k} for training; need at least 1 and 2")
    order = np.random.default_rng(seed + 7919).permutation(n)
    val_idx = torch.from_numpy(np.sort(order[:k]))
    train_idx = torch.from_numpy(np.sort(order[k:]))
    return _subset(dataset, train_idx, dataset.split if hasattr(dataset, "split") else "train"), \
        _subset(dataset, val_idx, "val")


def _subset(dataset: Any, idx: torch.Tensor, split: str) -> Any:
    from imcflow.train.datasets import ImageDataset

    x, y = dataset.tensors[:2]
    if isinstance(dataset, ImageDataset):
        return ImageDataset(x[idx].contiguous(), y[idx], dataset.info, split)
    return torch.utils.data.TensorDataset(x[idx], y[idx])


@dataclass(frozen=True)
class Plateau:
    """Stop when the evaluated accuracy has not risen for ``patience`` epochs (ties do not count as a
    rise). ``patience=0`` never stops early.

    >>> from imcflow.train.loop import EpochRecord
    >>> h = [EpochRecord(i + 1, 0.0, 0.0, a, 0.0, 0.0) for i, a in enumerate([0.5, 0.7, 0.7, 0.6])]
    >>> Plateau(2)(h[:3]), Plateau(2)(h)
    (False, True)
    """

    patience: int

    def __post_init__(self) -> None:
        check_int("patience", self.patience, 0)

    def __call__(self, history: Sequence[Any]) -> bool:
        accs = [h.test_accuracy for h in history if h.test_accuracy is not None]
        if self.patience == 0 or not accs:
            return False
        best = int(np.argmax(accs))  # the first epoch reaching the maximum
        return len(accs) - 1 - best >= self.patience
