"""Checkpoint files: atomic, content-checked saving, safe loading, random-generator state, rebuilding.

This module owns the on-disk format used by :func:`imcflow.train.loop.fit` (one checkpoint per epoch),
by the compression pipeline (baselines and per-round models) and by ``imcflow eval CHECKPOINT``.

Every file is a *verified container*: a ``torch.save`` dict ``{"format": "imcflow-verified/1", "kind",
"sha256", "payload"}`` whose ``payload`` is the ``torch.save`` bytes of the real content (a uint8
tensor) and ``sha256`` their digest. Loading checks the digest before it unpickles anything, so a flipped
byte anywhere in the weights is reported as damage instead of silently giving other numbers. A
training checkpoint's content (``kind="checkpoint"``) holds only tensors and plain Python values and
loads with ``torch.load(weights_only=True)``:

``model_spec``  ``{"name", "kwargs", "quant"}`` to rebuild the model (:class:`ModelRecipe`), or None
``model``       the model's ``state_dict``
``optimizer``   the optimizer's ``state_dict``;  ``scheduler``: ``{"step": optimizer steps taken}``
``rng``         torch (CPU and CUDA), numpy, python ``random``, and the data-order / augmentation
                generators of the loop
``epoch``       epochs completed;  ``history``: one dict per completed epoch
``config``      the :class:`~imcflow.train.loop.TrainConfig` as a dict;  ``data``: the dataset settings
``identity``    what a resume must match (see :func:`imcflow.train.loop.fit`)

Writes go through :func:`imcflow.io.atomic_writer` (temporary file, fsync, rename), so a run killed
while saving leaves the previous checkpoint intact. Error messages never suggest unsafe loading.
"""
from __future__ import annotations

import hashlib
import io
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imcflow.errors import CorruptFileError, DataNotFoundError, FormatError
from imcflow.io import atomic_writer

CONTAINER = "imcflow-verified/1"
CHECKPOINT_KIND = "checkpoint"
CHECKPOINT_NAME = "checkpoint.pt"


@dataclass(frozen=True)
class ModelRecipe:
    """How to rebuild a model: ``imcflow.models.create_model(name, **kwargs)``, then, if ``quant`` is
    given, ``imcflow.quant.quantize_model(model, **quant)`` (e.g. ``{"weight_bits": 2, "act_bits":
    None, "scheme": "uniform"}``)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    quant: dict[str, Any] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def build(self) -> torch.nn.Module:
        from imcflow.models import create_model  # models import torch layers; keep this lazy

        model = create_model(self.name, **self.kwargs)
        if self.quant is not None:
            from imcflow.quant import quantize_model

            quantize_model(model, **self.quant)
        return model


def checkpoint_path(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run directory holding ``checkpoint.pt``."""
    p = Path(path)
    return p / CHECKPOINT_NAME if p.is_dir() else p


def save_verified(path: str | os.PathLike, obj: Any, kind: str) -> Path:
    """Write ``obj`` (anything ``torch.save`` takes) as a verified container of ``kind``, atomically;
    creates the parent folder; returns the file written."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    wrapper = {"format": CONTAINER, "kind": kind, "sha256": hashlib.sha256(payload).hexdigest(),
               "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(target) as fh:
        torch.save(wrapper, fh)
    return target


def _unreadable(p: Path, exc: Exception) -> FormatError:
    # torch's own messages may advise loading with weights_only=False, which runs arbitrary code from
    # the file; never pass that advice on.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "weights_only" in str(exc) or "unpickl" in str(exc).lower() or len(first) > 200:
        first = "it holds objects that a safe load refuses, or is damaged"
    return CorruptFileError(f"{p}: cannot be read as an imcflow file ({type(exc).__name__}: {first})")


def load_verified(path: str | os.PathLike, kind: str, map_location: str | torch.device = "cpu",
                  trusted_objects: bool = False) -> Any:
    """Read a file written by :func:`save_verified`: check format, kind and content hash, then load
    the content. Only tensors and plain values are accepted unless ``trusted_objects`` (the pipeline's
    own whole-module files), and even then only after the hash matched."""
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"{p} does not exist")
    try:
        wrapper = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged or foreign file
        raise _unreadable(p, exc) from None
    if not isinstance(wrapper, dict) or wrapper.get("format") != CONTAINER:
        tag = wrapper.get("format") if isinstance(wrapper, dict) else None
        raise FormatError(f"{p}: not an imcflow {kind} file (format tag {tag!r}, want {CONTAINER!r}; "
                          f"files from imcflow before content hashes cannot be verified: retrain)")
    if wrapper.get("kind") != kind:
        raise FormatError(f"{p}: holds an imcflow {wrapper.get('kind')!r} file, not a {kind!r}")
    payload = wrapper.get("payload")
    if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8:
        raise CorruptFileError(f"{p}: damaged (no payload)")
    data = payload.numpy().tobytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != wrapper.get("sha256"):
        raise CorruptFileError(f"{p}: damaged: the content hash does not match (sha256 {digest[:16]}... "
                               f"vs recorded {str(wrapper.get('sha256'))[:16]}...); the file was changed "
                               f"after it was written")
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=not trusted_objects)
    except Exception as exc:
        raise _unreadable(p, exc) from None


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write a training checkpoint ``state`` atomically with its content hash; returns the file."""
    return save_verified(path, state, CHECKPOINT_KIND)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and verify a checkpoint written by :func:`save_checkpoint` (file or run directory)."""
    p = checkpoint_path(path)
    if not p.is_file():
        raise DataNotFoundError(f"checkpoint {p} does not exist (give the file or the run directory "
                                f"that holds {CHECKPOINT_NAME}, as written by 'imcflow train --out DIR')")
    state = load_verified(p, CHECKPOINT_KIND, map_location)
    if not isinstance(state, dict):
        raise FormatError(f"checkpoint {p}: holds a {type(state).__name__}, not a checkpoint dict")
    return state


def rebuild_model(state: dict[str, Any]) -> torch.nn.Module:
    """The model of a checkpoint, constructed from its ``model_spec`` with the saved weights loaded."""
    spec = state.get("model_spec")
    if not spec:
        raise FormatError("checkpoint has no model_spec (it was written by fit() without one), so the "
                          "model cannot be rebuilt; construct the model yourself and load state['model']")
    model = ModelRecipe(spec["name"], dict(spec.get("kwargs") or {}), spec.get("quant")).build()
    load_weights(model, state["model"], "checkpoint")
    return model


def load_weights(model: torch.nn.Module, weights: dict[str, Any], where: str) -> None:
    """``model.load_state_dict(weights)`` with a one-line error listing the first mismatches instead
    of torch's multi-line size-mismatch report."""
    own = model.state_dict()
    problems = [f"{k}: missing" for k in own if k not in weights]
    problems += [f"{k}: unexpected" for k in weights if k not in own]
    problems += [f"{k}: shape {tuple(weights[k].shape)} vs model {tuple(v.shape)}"
                 for k, v in own.items() if k in weights and hasattr(weights[k], "shape")
                 and tuple(weights[k].shape) != tuple(v.shape)]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise FormatError(f"{where}: the saved weights do not fit the model "
                          f"({'; '.join(problems[:3])}{more})")
    model.load_state_dict(weights)


# ------------------------------------------------------------------------------ random generators

def capture_rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every random state a training step can touch, in weights_only-loadable form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)), "pos": int(pos),
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
