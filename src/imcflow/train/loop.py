"""The training and evaluation loop: seeded, checkpointed every epoch, exactly resumable.

This module owns :class:`TrainConfig`, :func:`fit`, :func:`evaluate` and :class:`TrainResult`.

Determinism: the data order comes from a ``torch.Generator`` seeded with ``seed``, augmentation from a
second one seeded with ``seed + 1``; the global torch/numpy/python generators are seeded with ``seed``
at a fresh start (dropout and user hooks draw from them). At the end of every epoch the checkpoint
stores the model, the optimizer, the schedule position and all those generator states, so
``fit(..., resume=True)`` after an interruption anywhere (even mid-epoch: that epoch is redone from its
start) ends with weights bit-identical to an uninterrupted run on the same device.

Inputs are normalised with the dataset's ``.mean``/``.std`` inside :func:`fit` and :func:`evaluate`
(:func:`prepare_inputs`); feed a trained model the same way when you run it yourself.

Example: ``fit(model, load_dataset("digits"), load_dataset("digits", "test"),
TrainConfig(epochs=5, lr=0.05))`` trains for 5 epochs of 12 steps each (1437 images, batch 128)
with a per-step cosine schedule from 0.05 down to 0.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from imcflow.errors import ConfigError, RunFolderError, TrainingDivergedError, check_int
from imcflow.registry import Registry
from imcflow.seeding import check_seed, seed_everything
from imcflow.train.augment import Augment, normalize
from imcflow.train.checkpoint import (
    CHECKPOINT_NAME,
    ModelRecipe,
    capture_rng_state,
    load_checkpoint,
    load_weights,
    restore_rng_state,
    save_checkpoint,
)
from imcflow.validate import check_float, check_type

# name -> factory(params, config); a registry so a new optimizer is one entry.
OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer", {
    "sgd": lambda params, c: torch.optim.SGD(params, lr=c.lr, momentum=c.momentum,
                                             weight_decay=c.weight_decay, nesterov=c.nesterov),
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay),
})

# name -> lr factor at optimizer step ``step`` (0-based) of ``total``; applied every step.
SCHEDULES: Registry[Callable[[int, int], float]] = Registry("learning-rate schedule", {
    "cosine": lambda step, total: 0.5 * (1.0 + math.cos(math.pi * step / max(1, total))),
    "constant": lambda step, total: 1.0,
})


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run. ``device``: "auto" (CUDA if available, else CPU),
    "cpu", "cuda" or "cuda:N"."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    seed: int = 0
    augment: bool = True
    device: str = "auto"
    nesterov: bool = False

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_seed(self.seed)
        check_float("lr", self.lr, 0, min_inclusive=False)
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS.names())}, "
                              f"got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES.names())}, "
                              f"got {self.schedule!r}")
        if not 0.0 <= check_float("momentum", self.momentum) < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum!r}")
        check_float("weight_decay", self.weight_decay, 0)
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConfigError("nesterov needs optimizer 'sgd' with momentum > 0")
        resolve_device(self.device)

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(device: str) -> torch.device:
    """"auto" -> cuda if available else cpu; otherwise the named device (validated)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use auto or cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return dev


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch. Accuracies are fractions in [0, 1]; train values are running averages
    over the epoch's (augmented) batches."""

    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float | None
    lr: float
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """History of a run (including epochs done before a resume), final test accuracy (fraction, or
    None without a test set), total training seconds and where this call started."""

    history: tuple[EpochRecord, ...]
    final_test_accuracy: float | None
    seconds: float
    resumed_from_epoch: int = 0
    checkpoint: str | None = None

    def to_dict(self) -> dict:
        return {"history": [r.to_dict() for r in self.history],
                "final_test_accuracy": self.final_test_accuracy, "seconds": self.seconds,
                "resumed_from_epoch": self.resumed_from_epoch, "checkpoint": self.checkpoint}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([r.to_dict() for r in self.history])


def prepare_inputs(x: torch.Tensor, dataset: Any) -> torch.Tensor:
    """Normalise a batch the way :func:`fit` and :func:`evaluate` do (no-op if the dataset has no
    ``.mean``/``.std``)."""
    mean, std = getattr(dataset, "mean", None), getattr(dataset, "std", None)
    return x if mean is None or std is None else normalize(x, mean, std)


def _tensors(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        x, y = dataset.tensors[:2]
    except AttributeError:
        raise ConfigError(f"dataset must be a TensorDataset (images, labels) such as load_dataset() "
                          f"returns, got {type(dataset).__name__}") from None
    return x, y


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Any, batch_size: int = 256,
             device: str | torch.device | None = None) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of ``model`` on ``dataset``, in eval mode, normalised like
    :func:`fit`. The model's train/eval mode is restored afterwards."""
    check_int("batch_size", batch_size, 1)
    x, y = _tensors(dataset)
    if len(y) == 0:
        raise ConfigError("evaluate: the dataset is empty")
    dev = next(model.parameters(), torch.empty(0)).device if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for i in range(0, len(y), batch_size):
            xb = prepare_inputs(x[i:i + batch_size].to(dev), dataset)
            correct += int((model(xb).argmax(1) == y[i:i + batch_size].to(dev)).sum())
    finally:
        model.train(was_training)
    return correct / len(y)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    chunks = list(order.split(batch_size))
    # A last batch of one image breaks batch norm in train mode; fold it into the previous one.
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2] = torch.cat(chunks[-2:])
        chunks.pop()
    return chunks


# TrainConfig fields a resume may change: the device (same numbers on the same kind of device), and
# epochs, which may grow (the schedule is recomputed for the new length) but never shrink.
RESUME_MAY_CHANGE = ("device", "epochs")


def fingerprint(dataset: Any) -> str | None:
    """sha256 of a dataset's image and label tensors (shape, dtype and bytes), or None without one.

    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> a = TensorDataset(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]))
    >>> fingerprint(a) == fingerprint(TensorDataset(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1])))
    True
    >>> fingerprint(a) == fingerprint(TensorDataset(torch.zeros(2, 1, 2, 2), torch.tensor([1, 0])))
    False
    """
    if dataset is None:
        return None
    h = hashlib.sha256()
    for t in _tensors(dataset):
        arr = np.ascontiguousarray(t.detach().cpu().numpy())
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(arr.tobytes())  # a copy, but only once per run (fit with a checkpoint folder)
    return h.hexdigest()


def run_identity(config: TrainConfig, model: nn.Module, train_set: Any, test_set: Any,
                 model_spec: ModelRecipe | None, data_spec: dict[str, Any] | None) -> dict[str, Any]:
    """Everything a resumed run must share with the checkpoint: the configuration (except
    :data:`RESUME_MAY_CHANGE`), the model recipe and architecture (every tensor's shape), the data
    settings (except ``root``: where the files live does not matter, their content does) and a
    fingerprint of the training and test images and labels."""
    cfg = {k: v for k, v in config.to_dict().items() if k not in RESUME_MAY_CHANGE}
    data = {k: v for k, v in (data_spec or {}).items() if k != "root"}
    ident = {"config": cfg, "model_spec": model_spec.to_dict() if model_spec is not None else None,
             "architecture": {k: list(v.shape) for k, v in model.state_dict().items()},
             "data": data, "train_data": fingerprint(train_set), "test_data": fingerprint(test_set)}
    return json.loads(json.dumps(ident, default=str))  # canonical: tuples as lists, like the saved one


def _differences(saved: Any, now: Any, path: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(now, dict):
        out: list[str] = []
        for k in sorted(set(saved) | set(now), key=str):
            out += _differences(saved.get(k), now.get(k), f"{path}.{k}" if path else str(k))
        return out
    if saved == now:
        return []
    if path.endswith("_data"):
        return [f"{path}: other images or labels"]
    return [f"{path}: checkpoint {saved!r} vs now {now!r}"]


def _check_resumable(state: dict[str, Any], identity: dict[str, Any], config: TrainConfig,
                     where: Path) -> None:
    saved = state.get("identity")
    if saved is None:
        raise RunFolderError(f"cannot resume {where}: the checkpoint records no run identity; "
                             f"use another folder or overwrite it")
    diffs = _differences(saved, identity)
    arch = [d for d in diffs if d.startswith("architecture.")]
    if arch:  # one line for the architecture, not one per tensor
        diffs = [d for d in diffs if not d.startswith("architecture.")]
        example = arch[0][len("architecture."):]
        diffs.append(f"model architecture: {len(arch)} tensor(s) differ, e.g. {example}")
    saved_epochs = int(state.get("config", {}).get("epochs", 0))
    if config.epochs < saved_epochs:
        diffs.append(f"epochs: checkpoint {saved_epochs} vs now {config.epochs} (epochs may grow, "
                     f"not shrink)")
    if diffs:
        raise RunFolderError(f"cannot resume {where}: the run differs from the checkpoint's "
                             f"({'; '.join(diffs)}); only {', '.join(RESUME_MAY_CHANGE)} may change")


def fit(model: nn.Module, train_set: Any, test_set: Any = None, config: TrainConfig | None = None,
        checkpoint_dir: str | Path | None = None, resume: bool = False,
        extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
        after_step: Callable[[nn.Module], None] | None = None, progress: bool = True,
        model_spec: ModelRecipe | None = None, data_spec: dict[str, Any] | None = None,
        overwrite: bool = False,
        stop: Callable[[list[EpochRecord]], bool] | None = None) -> TrainResult:
    """Train ``model`` in place with cross-entropy (+ ``extra_loss(model)``), one checkpoint per epoch.

    ``after_step(model)`` runs after every optimizer step (re-apply masks or projections there).
    ``stop(history)`` runs after every epoch (and once after a resume); True ends training there
    (early stopping on the accuracy of ``test_set``, which is then the validation split, e.g.
    :class:`~imcflow.train.stopping.Plateau`); ``config.epochs`` stays the budget and the schedule's
    length.
    With ``resume=True`` and a checkpoint in ``checkpoint_dir``, training continues after the last
    completed epoch (without one it starts fresh); the checkpoint must come from the same run
    (:func:`run_identity`: configuration, model, data settings and the data itself), else
    :class:`~imcflow.errors.RunFolderError`. A checkpoint already in ``checkpoint_dir`` is never
    replaced by a fresh start unless ``overwrite=True``. ``model_spec``/``data_spec`` are stored in
    the checkpoint so ``imcflow eval`` can rebuild the model and reload the data.

    A loss that becomes NaN or infinite stops training with
    :class:`~imcflow.errors.TrainingDivergedError`; the checkpoint of the last finished epoch is kept.
    """
    check_type("model", model, nn.Module, hint="build one with create_model(name)")
    config = check_type("config", config, TrainConfig) if config is not None else TrainConfig()
    if resume and checkpoint_dir is None:
        raise ConfigError("resume=True needs a checkpoint_dir")
    device = resolve_device(config.device)
    x_all, y_all = _tensors(train_set)
    if len(y_all) < 2:
        raise ConfigError(f"the training set needs at least 2 images, got {len(y_all)}")
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = OPTIMIZERS[config.optimizer](params, config)
    gens = {"data": torch.Generator().manual_seed(config.seed),
            "augment": torch.Generator().manual_seed(config.seed + 1)}
    augment = Augment.for_dataset(train_set) if config.augment and hasattr(train_set, "info") else None
    steps_per_epoch = len(_batches(len(y_all), config.batch_size, torch.Generator().manual_seed(0)))
    total_steps = config.epochs * steps_per_epoch
    schedule = SCHEDULES[config.schedule]

    ckpt_file = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    history: list[EpochRecord] = []
    start_epoch, step = 0, 0
    identity = (run_identity(config, model, train_set, test_set, model_spec, data_spec)
                if ckpt_file is not None else None)
    if ckpt_file is not None and ckpt_file.is_file() and not resume and not overwrite:
        raise RunFolderError(f"{ckpt_file.parent} already holds a training checkpoint; resume it or "
                             f"allow overwriting it (CLI: --resume or --overwrite)")
    if resume and ckpt_file is not None and identity is not None and ckpt_file.is_file():
        state = load_checkpoint(ckpt_file, map_location=device)
        _check_resumable(state, identity, config, ckpt_file.parent)
        load_weights(model, state["model"], str(ckpt_file))
        optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state["rng"], gens)
        start_epoch, step = int(state["epoch"]), int(state["scheduler"]["step"])
        history = [EpochRecord(**h) for h in state["history"]]
    else:
        seed_everything(config.seed)  # dropout and user hooks draw from the global generators
    resumed_from = start_epoch

    from tqdm.auto import tqdm

    show = progress and sys.stderr.isatty()
    stopped = stop is not None and bool(history) and stop(history)  # a resumed run that had stopped
    for epoch in range(start_epoch, config.epochs if not stopped else start_epoch):
        t0 = time.perf_counter()
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(_batches(len(y_all), config.batch_size, gens["data"]), disable=not show,
                   desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, file=sys.stderr)
        lr = config.lr
        for idx in bar:
            xb, yb = x_all[idx].to(device), y_all[idx].to(device)
            if augment is not None:
                xb = augment(xb, gens["augment"])
            xb = prepare_inputs(xb, train_set)
            lr = config.lr * schedule(step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            out = model(xb)
            loss = nn.functional.cross_entropy(out, yb)
            total = loss + extra_loss(model) if extra_loss is not None else loss
            if not math.isfinite(float(total.detach())):
                kept = (f"the checkpoint of epoch {epoch} in {ckpt_file.parent} is kept"
                        if ckpt_file is not None and epoch > 0 else "no checkpoint was written")
                raise TrainingDivergedError(
                    f"training diverged: the loss is {float(total.detach())} at epoch {epoch + 1}, "
                    f"step {step + 1} (lr {lr:.3g}); {kept}; lower the learning rate (--lr)")
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            step += 1
            if after_step is not None:
                after_step(model)
            n = len(yb)
            loss_sum += float(loss.detach()) * n
            correct += int((out.detach().argmax(1) == yb).sum())
            seen += n
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
        bar.close()
        test_acc = evaluate(model, test_set, device=device) if test_set is not None else None
        record = EpochRecord(epoch + 1, loss_sum / seen, correct / seen, test_acc, lr,
                             time.perf_counter() - t0)
        history.append(record)
        if show:
            tqdm.write(f"epoch {record.epoch}/{config.epochs}: loss {record.train_loss:.4f} "
                       f"train acc {record.train_accuracy:.4f}"
                       + (f" test acc {test_acc:.4f}" if test_acc is not None else ""), file=sys.stderr)
        if ckpt_file is not None:
            save_checkpoint(ckpt_file, {
                "model_spec": model_spec.to_dict() if model_spec is not None else None,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": {"step": step}, "rng": capture_rng_state(gens),
                "epoch": epoch + 1, "history": [r.to_dict() for r in history],
                "config": config.to_dict(), "data": dict(data_spec or {}), "identity": identity})
        if stop is not None and stop(history):
            break
    final = history[-1].test_accuracy if history else None
    return TrainResult(tuple(history), final, sum(r.seconds for r in history), resumed_from,
                       str(ckpt_file) if ckpt_file is not None else None)
