"""Batch augmentation and normalisation with torch ops, randomness drawn from a torch.Generator.

This module owns the per-batch input pipeline of training: random crop after zero padding, random
horizontal flip, and per-channel normalisation. Everything acts on a whole NCHW batch at once (no
per-image Python loop) and every random draw comes from the generator passed in, so a run is
reproducible and resumable by saving that generator's state.

Example: ``random_crop(x, 4, g)`` on a (N, C, 32, 32) batch pads to 40x40 and cuts a 32x32 window at
an offset drawn uniformly from {0..8}^2 per image; offset (4, 4) returns the image unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from imcflow.errors import check_int


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad each image by ``padding`` and cut a window of the original size at a random offset."""
    if padding == 0:
        return x
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device="cpu").to(x.device)
    rows = (offsets[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # N,1,H,1
    cols = (offsets[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # N,1,1,W
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_hflip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    flip = (torch.rand(x.shape[0], generator=generator, device="cpu") < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``(x - mean) / std`` per channel."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


@dataclass(frozen=True)
class Augment:
    """The training-time augmentation of one dataset: crop padding (0 = none) and flip on/off."""

    padding: int = 0
    flip: bool = False

    def __post_init__(self) -> None:
        check_int("padding", self.padding, 0, 64)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = random_crop(x, self.padding, generator)
        return random_hflip(x, generator) if self.flip else x

    @classmethod
    def for_dataset(cls, dataset) -> Augment:
        """Crop padding of 1/8 of the image size (4 for 32x32, 3 for 28x28, 1 for 8x8); flips only
        where they keep the label (natural images; not digits)."""
        return cls(padding=max(1, dataset.image_size // 8), flip=bool(dataset.info.flip))
