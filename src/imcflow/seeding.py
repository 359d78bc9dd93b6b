"""The one place random seeds are validated, derived and applied.

Every command that draws random numbers (training, compression, the simulator's noise and data, the
NeuroSim trace, ONNX export of randomly initialised models) goes through :func:`check_seed`, and those
that touch global generators call :func:`seed_everything` before any model, dataset or sampler exists.
Torch draws its initial seed from the operating system at start-up, so a model built before seeding
differs from process to process; seeding first is what makes two runs byte-identical.

Seeds are integers in ``[0, 2**32 - 1]``: the range numpy's legacy generator accepts, far inside
torch's (which keeps only the low 63 bits, so 2**63 would silently equal 0). Seeds the code derives
from a user seed (one per compression round, say) come from :func:`derive_seed`, a hash, so they stay
in range and never collide with another user seed's by simple arithmetic.

>>> check_seed(7)
7
>>> derive_seed(0, "round", 1) == derive_seed(0, "round", 1) != derive_seed(0, "round", 2)
True
"""
from __future__ import annotations

import hashlib
import random
import sys

from imcflow.errors import check_int

SEED_MAX = 2**32 - 1


def check_seed(value: object, field: str = "seed") -> int:
    """``value`` as an int in ``[0, SEED_MAX]``, or a :class:`~imcflow.errors.ConfigError` naming
    ``field``."""
    return check_int(field, value, 0, SEED_MAX)


def derive_seed(seed: int, *labels: object) -> int:
    """A seed in ``[0, SEED_MAX]`` for one named part of a seeded run (e.g. ``"round", 3``)."""
    text = "/".join([str(check_seed(seed)), *map(str, labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def seed_everything(seed: int, torch: bool = True) -> int:
    """Seed python's ``random``, numpy's global generator and (with ``torch``, importing it) torch's
    CPU and CUDA generators with ``seed``; returns the seed. Call it before building anything random.
    With ``torch=False`` torch is seeded only if something already imported it (torch-free commands
    stay torch-free)."""
    seed = check_seed(seed)
    random.seed(seed)
    import numpy as np

    np.random.seed(seed)
    if torch or sys.modules.get("torch") is not None:
        import torch as _torch

        _torch.manual_seed(seed)  # also seeds every CUDA device
    return seed
