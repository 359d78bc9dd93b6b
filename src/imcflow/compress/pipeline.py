"""The compression pipeline: baseline (trained once, cached) -> method rounds with fine-tuning ->
deployed-network report. Every step is checkpointed, so an interrupted run resumes where it stopped.

Layout under ``out_dir`` (the run) and ``baseline_dir`` (default ``<out_dir>/baselines``)::

    <baseline_dir>/<model>-<data>-<size>-<quant>-e<epochs>-n<subset>-s<seed>/
        checkpoint.pt     the training loop's per-epoch checkpoint (resumable)
        baseline.pt       the trained baseline (state dict + accuracy); reused by every later run
    <out_dir>/state.json  the rounds done so far (accuracy, kept or not)
    <out_dir>/round<k>/   pruned.pt (model after apply), checkpoint.pt (fine-tuning), done.pt
    <out_dir>/report.json the :class:`CompressionReport`

Every file is written atomically (:mod:`imcflow.io`); model files carry a content hash checked on load
(:func:`imcflow.train.checkpoint.save_verified`). ``baseline.pt`` is a training checkpoint with its
model recipe (quantizer included) and data settings, so ``imcflow eval`` reads it directly. A run folder
that already holds a run is refused unless ``resume`` (the run's settings must match, see
:meth:`CompressConfig.identity`) or ``overwrite`` (its state, rounds and report are deleted first; the
baseline cache is kept, as it is keyed by everything that shapes a baseline).

Seeding: :func:`imcflow.seeding.seed_everything` runs with ``seed`` before the data and the baseline
model are built, and with a seed derived from ``seed`` and the round index before every round, so a
round draws the same numbers whether the baseline was just trained or reused from the cache.

Data: a seeded ``val_fraction`` of the training images (default 10 %, :func:`~imcflow.train.
split_validation`) is held out as the validation split; every stopping rule reads it, never the test
set. Baselines train for ``epochs``; every round fine-tunes until the validation accuracy has not
risen for ``patience`` epochs, or for ``finetune_epochs`` (the budget) at most.

The acceptance rule (VWC-SDK's) applies to iterative methods only (``method.iterative``): after each
round's fine-tuning the validation accuracy may be at most ``max_drop`` percentage points below the
baseline's; the first round that breaks it is discarded and the rounds stop, so the reported model
is the last one that kept it. A non-iterative method (low rank, the pruning baselines) is applied
once and always reported, whatever its accuracy. Reported accuracies are on the test set, with the
validation accuracies beside them.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from imcflow.compress.base import CompressionContext, CompressionReport, RoundRecord, get_method
from imcflow.compress.deploy import deploy, extract_network
from imcflow.errors import ConfigError, RunFolderError, check_int
from imcflow.hardware.array import ArraySpec
from imcflow.io import atomic_write_json, claim_run_dir, short_digest
from imcflow.mapping import MappingOptions, strategy_names
from imcflow.quant.quantizers import quant_scheme_names
from imcflow.seeding import check_seed, derive_seed, seed_everything

# CompressConfig fields a resumed run may change (README: "Checkpoints and resume").
RESUME_MAY_CHANGE = ("out_dir", "baseline_dir", "device", "cost_preset")
# What a run writes in its folder (the baseline cache is separate: keyed, reusable).
RUN_FILES = ("state.json", "report.json", "round*")


@dataclass(frozen=True)
class CompressConfig:
    """Everything a compression run depends on. ``quant``: the weight quantizer trained in (QAT) at
    the array's ``weight_bits`` (``none``: float training, float weights reported). ``max_drop``:
    allowed accuracy drop in percentage points. ``subset``/``test_subset``: seeded random subsets.
    ``cost_preset``: hardware preset for energy/latency/area (None: no cost model numbers).
    ``val_fraction``: held-out share of the training images for the stopping rules (0: none, the
    rules then read the test set). ``finetune_epochs``: the fine-tuning budget per round;
    ``patience``: stop a round's fine-tuning after this many epochs without a rise in validation
    accuracy (0: always run the budget)."""

    model: str
    data: str
    method: str
    array: ArraySpec
    method_options: Mapping[str, Any] = field(default_factory=dict)
    mapping: MappingOptions = MappingOptions()
    mapping_methods: tuple[str, ...] = field(default_factory=lambda: tuple(strategy_names()))
    epochs: int = 5
    finetune_epochs: int = 10
    patience: int = 2
    val_fraction: float = 0.1
    batch_size: int = 128
    lr: float = 0.05
    finetune_lr: float = 0.01
    seed: int = 0
    subset: int | None = None
    test_subset: int | None = None
    image_size: int | None = None
    quant: str = "uniform"
    act_bits: int | None = None
    max_drop: float = 1.0
    device: str = "auto"
    cost_preset: str | None = "isaac"
    data_root: str | None = None
    out_dir: str = "runs/compress"
    baseline_dir: str | None = None

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, 1)
        check_int("finetune_epochs", self.finetune_epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_seed(self.seed)
        check_int("patience", self.patience, 0)
        if not isinstance(self.val_fraction, (int, float)) or not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.quant not in quant_scheme_names():
            raise ConfigError(f"quant must be one of {', '.join(quant_scheme_names())}, "
                              f"got {self.quant!r}")
        if not self.max_drop >= 0:
            raise ConfigError(f"max_drop must be >= 0 percentage points, got {self.max_drop!r}")

    def baseline_key(self, image_size: int, in_channels: int) -> str:
        q = "float" if self.quant == "none" else f"{self.quant}{self.array.weight_bits}"
        if self.act_bits is not None:
            q += f"a{self.act_bits}"
        # The readable part names the usual differences; the digest covers everything else that
        # shapes a baseline (learning rate, batch size, data folder...), so a cached baseline is
        # only ever reused for the same settings.
        return (f"{self.model}-{self.data}-{in_channels}x{image_size}-{q}-e{self.epochs}"
                f"-n{self.subset or 'all'}-t{self.test_subset or 'all'}-v{self.val_fraction:g}"
                f"-s{self.seed}"
                f"-{short_digest(self.baseline_identity(image_size, in_channels))}")

    def baseline_identity(self, image_size: int, in_channels: int) -> dict[str, Any]:
        """Every setting a baseline depends on."""
        return {"model": self.model, "data": self.data, "data_root": self.data_root,
                "input": [in_channels, image_size], "quant": self.quant,
                "weight_bits": self.array.weight_bits, "act_bits": self.act_bits, "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr, "seed": self.seed, "subset": self.subset,
                "test_subset": self.test_subset, "val_fraction": self.val_fraction}

    def identity(self) -> dict[str, Any]:
        """Everything that shapes the rounds, as plain JSON values: a resumed run must match it. Not
        included (a resume may change them): ``out_dir``, ``baseline_dir``, ``device`` and
        ``cost_preset`` (the report's energy column is recomputed on every call)."""
        d = json.loads(json.dumps(asdict(self), default=str))
        for name in RESUME_MAY_CHANGE:
            d.pop(name)
        d["mapping_methods"] = list(self.mapping_methods)
        d["array"] = self.array.label + f"/w{self.array.weight_bits}c{self.array.cell_bits}"
        return d

    def run_key(self) -> str:
        """A digest of :meth:`identity`."""
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["array"] = self.array.label
        d["mapping"] = {"geometry": self.mapping.geometry, "search": self.mapping.search}
        d["mapping_methods"] = list(self.mapping_methods)
        return d


def _log(progress: bool, text: str) -> None:
    if progress:
        print(f"[compress] {text}", flush=True)


def _data(config: CompressConfig):
    from imcflow.models import default_input_shape
    from imcflow.train import load_dataset

    size = config.image_size or default_input_shape(config.model)[1]
    train = load_dataset(config.data, "train", root=config.data_root, image_size=size,
                         subset=config.subset, seed=config.seed)
    test = load_dataset(config.data, "test", root=config.data_root, image_size=size,
                        subset=config.test_subset, seed=config.seed)
    from imcflow.train import split_validation

    train, val = split_validation(train, config.val_fraction, config.seed)
    return train, val, test, (train.in_channels, size, size)


def _recipe(config: CompressConfig, train: Any, input_shape: tuple[int, int, int]):
    from imcflow.models import get_spec
    from imcflow.train import ModelRecipe

    kwargs: dict[str, Any] = {"num_classes": train.num_classes, "in_channels": input_shape[0]}
    if get_spec(config.model).sized:
        kwargs["input_size"] = list(input_shape[1:])
    quant = None if config.quant == "none" else {
        "weight_bits": config.array.weight_bits, "act_bits": config.act_bits, "scheme": config.quant}
    return ModelRecipe(config.model, kwargs, quant)


def _data_spec(config: CompressConfig, train: Any, input_shape: tuple[int, int, int]) -> dict[str, Any]:
    # The settings 'imcflow eval' needs to reload the test split the baseline was measured on.
    return {"name": config.data, "root": config.data_root, "image_size": input_shape[1],
            "in_channels": input_shape[0], "seed": config.seed, "subset": config.subset,
            "test_subset": config.test_subset, "num_classes": train.num_classes,
            "mean": list(train.mean), "std": list(train.std)}


def _train_config(config: CompressConfig, epochs: int, lr: float, seed: int):
    from imcflow.train import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=config.batch_size, lr=lr, seed=seed,
                       device=config.device)


def train_baseline(config: CompressConfig, train: Any, test: Any, input_shape: tuple[int, int, int],
                   progress: bool = True, val: Any = None) -> tuple[torch.nn.Module, float, float, float]:
    """The cached baseline: (model, test accuracy, validation accuracy (the test accuracy without a
    validation split), seconds spent training now; 0 when reused)."""
    from imcflow.train import evaluate, fit
    from imcflow.train.checkpoint import load_checkpoint, load_weights, save_checkpoint

    base_root = Path(config.baseline_dir or os.path.join(config.out_dir, "baselines"))
    folder = base_root / config.baseline_key(input_shape[1], input_shape[0])
    final = folder / "baseline.pt"
    recipe = _recipe(config, train, input_shape)
    ident = config.baseline_identity(input_shape[1], input_shape[0])
    model = recipe.build()
    if final.is_file():
        state = load_checkpoint(final)
        if state.get("baseline_identity") != ident:
            raise RunFolderError(f"{final} was trained with other settings than this run's "
                                 f"({state.get('baseline_identity')} vs {ident}); delete it")
        load_weights(model, state["model"], str(final))
        _log(progress, f"baseline reused: {final} (accuracy {state['accuracy']:.4f})")
        return model, float(state["accuracy"]), float(state.get("val_accuracy", state["accuracy"])), 0.0
    _log(progress, f"training baseline {config.model} on {config.data} for {config.epochs} epochs "
                   f"-> {folder}")
    t0 = time.perf_counter()
    data_spec = _data_spec(config, train, input_shape)
    train_config = _train_config(config, config.epochs, config.lr, config.seed)
    result = fit(model, train, test if val is None else val, train_config, checkpoint_dir=folder,
                 resume=True, progress=progress, model_spec=recipe, data_spec=data_spec)
    seconds = time.perf_counter() - t0
    acc = evaluate(model, test)
    val_acc = acc if val is None else evaluate(model, val)
    # A training checkpoint (no optimizer state) that 'imcflow eval' can read; written atomically, so
    # a half-written baseline is never reused.
    save_checkpoint(final, {"model_spec": recipe.to_dict(), "model": model.state_dict(),
                            "epoch": config.epochs, "history": [r.to_dict() for r in result.history],
                            "config": train_config.to_dict(), "data": data_spec, "accuracy": acc,
                            "val_accuracy": val_acc,
                            "baseline_identity": ident, "compress_config": config.to_dict()})
    _log(progress, f"baseline accuracy {acc:.4f}, validation {val_acc:.4f} ({seconds:.0f} s)")
    return model, acc, val_acc, seconds


def _save_model(model: torch.nn.Module, path: Path) -> None:
    # Whole module: channel pruning changes shapes, so a state dict alone could not be reloaded.
    from imcflow.train.checkpoint import save_verified

    save_verified(path, model, "model")


def _load_model(path: Path) -> torch.nn.Module:
    # The pipeline's own files, pickled modules: loaded only after their content hash matched.
    from imcflow.train.checkpoint import load_verified

    return load_verified(path, "model", trusted_objects=True)


def _context(config: CompressConfig, model: torch.nn.Module, input_shape: tuple[int, ...],
             options: Mapping[str, Any], index: int) -> CompressionContext:
    return CompressionContext(config.array, config.mapping, options,
                              extract_network(model, input_shape, config.model), tuple(input_shape), index)


def _resumable_state(out: Path, config: CompressConfig) -> dict[str, Any] | None:
    """The saved state of the run in ``out`` if it is this configuration's, else a RunFolderError
    naming the differences."""
    state_file = out / "state.json"
    if not state_file.is_file():
        return None
    try:
        saved = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{state_file}: cannot be read ({exc}); use --overwrite") from None
    if saved.get("key") == config.run_key():
        return saved
    before, now = saved.get("config") or {}, config.identity()
    diffs = [f"{k}: saved {before.get(k)!r} vs now {now.get(k)!r}" for k in sorted(set(before) | set(now))
             if before.get(k) != now.get(k)] or ["an older state file"]
    raise RunFolderError(f"cannot resume {out}: it holds a run with other settings ({'; '.join(diffs)}); "
                         f"only {', '.join(RESUME_MAY_CHANGE)} may change")


def run_compression(config: CompressConfig, progress: bool = True,
                    on_round: Callable[[RoundRecord], None] | None = None, resume: bool = False,
                    overwrite: bool = False) -> CompressionReport:
    """Baseline -> rounds (apply, fine-tune, accept or stop) -> deployed report, resumable.

    ``out_dir`` must not hold a run unless ``resume`` (continue it; the settings must match) or
    ``overwrite`` (start again); see the module docstring."""
    from imcflow.train import Plateau, evaluate, fit

    t_start = time.perf_counter()
    method = get_method(config.method)
    options = method.resolve_options(config.method_options)
    out = claim_run_dir(config.out_dir, RUN_FILES, resume, overwrite, "--out")
    saved = _resumable_state(out, config) if resume else None
    seed_everything(config.seed)  # before any data, model or sampler exists
    train, val, test, input_shape = _data(config)
    baseline, base_test, base_acc, base_seconds = train_baseline(config, train, test, input_shape,
                                                                 progress, val)
    judge = test if val is None else val  # what the stopping rules read

    state_file = out / "state.json"
    state: dict[str, Any] = saved or {"key": config.run_key(), "config": config.identity(), "rounds": [],
                                      "finished": False}
    rounds = [RoundRecord(r["round"], r["accuracy"], r["accepted"], r["seconds"], r.get("summary", {}),
                          r.get("test_accuracy"), r.get("epochs"))
              for r in state["rounds"]]

    def save_state() -> None:
        state["rounds"] = [r.to_dict() for r in rounds]
        atomic_write_json(state_file, state, default=str)

    accepted = [r for r in rounds if r.accepted]
    model = _load_model(out / f"round{accepted[-1].index}" / "done.pt") if accepted else \
        _load_model_copy(baseline)
    accuracy = accepted[-1].accuracy if accepted else base_acc
    test_accuracy = accepted[-1].test_accuracy if accepted else base_test
    index = len(rounds)
    # A non-iterative method that finished its one round (but not the report) is not applied twice.
    stop = (state["finished"] or any(not r.accepted for r in rounds)
            or (bool(rounds) and not method.iterative))
    while not stop:
        t0 = time.perf_counter()
        folder = out / f"round{index}"
        folder.mkdir(exist_ok=True)
        pruned_file = folder / "pruned.pt"
        ctx = _context(config, model, input_shape, options, index)
        seed_everything(derive_seed(config.seed, "round", index))
        if pruned_file.is_file():
            candidate = _load_model(pruned_file)
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        else:
            step = method.apply(_load_model_copy(model), ctx)
            if not step.changed:
                note = json.dumps(dict(step.summary), default=str)[:200]
                _log(progress, f"round {index}: nothing left to change ({note})")
                break
            candidate, summary = step.model, dict(step.summary)
            atomic_write_json(folder / "summary.json", summary, default=str)
            _save_model(candidate, pruned_file)
        _log(progress, f"round {index}: {method.name} applied; fine-tuning up to "
                       f"{config.finetune_epochs} epoch(s), patience {config.patience}")
        hooks = method.hooks(candidate, ctx)
        tuned = fit(candidate, train, judge,
                    _train_config(config, config.finetune_epochs, config.finetune_lr,
                                  derive_seed(config.seed, "finetune", index)),
                    checkpoint_dir=folder, resume=True, extra_loss=hooks.extra_loss,
                    after_step=hooks.after_step, progress=progress, stop=Plateau(config.patience))
        acc = evaluate(candidate, judge)
        acc_test = acc if val is None else evaluate(candidate, test)
        # The drop rule is for iterative methods: a one-shot method is always reported.
        ok = (not method.iterative) or 100.0 * (base_acc - acc) <= config.max_drop
        record = RoundRecord(index, acc, ok, time.perf_counter() - t0, summary, acc_test,
                             len(tuned.history))
        rounds.append(record)
        if ok:
            _save_model(candidate, folder / "done.pt")
            model, accuracy, test_accuracy = candidate, acc, acc_test
        save_state()
        if on_round is not None:
            on_round(record)
        _log(progress, f"round {index}: accuracy {acc:.4f} (baseline {base_acc:.4f}) -> "
                       f"{'kept' if ok else 'discarded, stop'}")
        index += 1
        stop = not ok or not method.iterative
    state["finished"] = True
    save_state()

    final_ctx = _context(config, model, input_shape, options, index)
    base_ctx = _context(config, baseline, input_shape, options, 0)
    deployed_base = deploy(baseline, input_shape, config.array, config.mapping_methods, config.mapping,
                           None, base_ctx, name=config.model, cost_preset=config.cost_preset)
    deployed = deploy(model, input_shape, config.array, config.mapping_methods, config.mapping,
                      method, final_ctx, name=f"{config.model}-{method.name}",
                      cost_preset=config.cost_preset)
    seconds = {"baseline_training": base_seconds,
               "rounds": sum(r.seconds for r in rounds),
               "total_this_call": time.perf_counter() - t_start}
    split = "validation" if val is not None else "test"
    rule = (f"rounds kept while the {split} accuracy is at most {config.max_drop:g} points below the "
            f"baseline's (iterative method)" if method.iterative else
            "drop rule not applied: non-iterative method, applied once and always reported")
    final_test = float(test_accuracy if test_accuracy is not None else accuracy)
    report = CompressionReport(config.model, config.data, method.name, options, config.array,
                               config.mapping, base_test, final_test, deployed_base, deployed,
                               tuple(rounds), seconds,
                               {**config.to_dict(), "input_shape": list(input_shape)},
                               None if val is None else base_acc,
                               None if val is None else accuracy, rule)
    atomic_write_json(out / "report.json", report.to_dict(), default=str)
    return report


def _load_model_copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)


def default_out_dir(config: CompressConfig) -> str:
    """``runs/compress/<model>-<data>-<method>-<array>-w<bits>-<digest>``: the digest (of
    :meth:`CompressConfig.identity`) makes two different runs' default folders differ."""
    return os.path.join("runs", "compress", f"{config.model}-{config.data}-{config.method}-"
                        f"{config.array.label}-w{config.array.weight_bits}-{config.run_key()[:8]}")


def with_out_dir(config: CompressConfig, out_dir: str | None) -> CompressConfig:
    return replace(config, out_dir=out_dir or default_out_dir(config))
