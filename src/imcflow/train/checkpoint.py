"""Checkpoint files: atomic saving, safe loading, random-generator state capture, model rebuilding.

This module owns the on-disk format used by :func:`imcflow.train.loop.fit` (one checkpoint per epoch)
and by ``imcflow eval CHECKPOINT``. A checkpoint is a ``torch.save`` dict holding only tensors and
plain Python values, so it loads with ``torch.load(weights_only=True)`` (no arbitrary unpickling):

``format``      ``"imcflow-checkpoint/1"``
``model_spec``  ``{"name", "kwargs"}`` to rebuild the model with ``imcflow.models.create_model``, or None
``model``       the model's ``state_dict``
``optimizer``   the optimizer's ``state_dict``;  ``scheduler``: ``{"step": optimizer steps taken}``
``rng``         torch (CPU and CUDA), numpy, python ``random``, and the data-order / augmentation
                generators of the loop
``epoch``       epochs completed;  ``history``: one dict per completed epoch
``config``      the :class:`~imcflow.train.loop.TrainConfig` as a dict;  ``data``: the dataset settings

Writes go to ``NAME.tmp`` first and are then renamed over ``NAME`` with :func:`os.replace`, so a run
killed while saving leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imcflow.errors import DataNotFoundError, FormatError

FORMAT = "imcflow-checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"


@dataclass(frozen=True)
class ModelRecipe:
    """How to rebuild a model: ``imcflow.models.create_model(name, **kwargs)``."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def build(self) -> torch.nn.Module:
        from imcflow.models import create_model  # models import torch layers; keep this lazy

        return create_model(self.name, **self.kwargs)


def checkpoint_path(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run directory holding ``checkpoint.pt``."""
    p = Path(path)
    return p / CHECKPOINT_NAME if p.is_dir() else p


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the format tag) atomically; returns the file written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save({"format": FORMAT, **state}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return target


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (file or run directory)."""
    p = checkpoint_path(path)
    if not p.is_file():
        raise DataNotFoundError(f"checkpoint {p} does not exist (give the file or the run directory "
                                f"that holds {CHECKPOINT_NAME}, as written by 'imcflow train --out DIR')")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged or foreign file
        raise FormatError(f"checkpoint {p}: cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise FormatError(f"checkpoint {p}: not an imcflow checkpoint (format tag "
                          f"{state.get('format') if isinstance(state, dict) else None!r}, want {FORMAT!r})")
    return state


def rebuild_model(state: dict[str, Any]) -> torch.nn.Module:
    """The model of a checkpoint, constructed from its ``model_spec`` with the saved weights loaded."""
    spec = state.get("model_spec")
    if not spec:
        raise FormatError("checkpoint has no model_spec (it was written by fit() without one), so the "
                          "model cannot be rebuilt; construct the model yourself and load state['model']")
    model = ModelRecipe(spec["name"], dict(spec.get("kwargs") or {})).build()
    model.load_state_dict(state["model"])
    return model


# ------------------------------------------------------------------------------ random generators

def capture_rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every random state a training step can touch, in weights_only-loadable form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "generators": {name: g.get_state() for name, g in generators.items()},
    }


def restore_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    for name, g in generators.items():
        g.set_state(state["generators"][name])
