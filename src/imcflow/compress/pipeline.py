"""The compression pipeline: baseline (trained once, cached) -> method rounds with fine-tuning ->
deployed-network report. Every step is checkpointed, so an interrupted run resumes where it stopped.

Layout under ``out_dir`` (the run) and ``baseline_dir`` (default ``<out_dir>/baselines``)::

    <baseline_dir>/<model>-<data>-<size>-<quant>-e<epochs>-n<subset>-s<seed>/
        checkpoint.pt     the training loop's per-epoch checkpoint (resumable)
        baseline.pt       the trained baseline (state dict + accuracy); reused by every later run
    <out_dir>/state.json  the rounds done so far (accuracy, kept or not)
    <out_dir>/round<k>/   pruned.pt (model after apply), checkpoint.pt (fine-tuning), done.pt
    <out_dir>/report.json the :class:`CompressionReport`

The acceptance rule (VWC-SDK's, for every iterative method): after each round's fine-tuning the
accuracy may be at most ``max_drop`` percentage points below the baseline's; the first round that
breaks it is discarded and the rounds stop, so the reported model is the last one that kept it.
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
from imcflow.errors import ConfigError, check_int
from imcflow.hardware.array import ArraySpec
from imcflow.mapping import DEFAULT_METHODS, MappingOptions

QUANT_SCHEMES = ("dorefa", "uniform", "pow2", "none")


@dataclass(frozen=True)
class CompressConfig:
    """Everything a compression run depends on. ``quant``: the weight quantizer trained in (QAT) at
    the array's ``weight_bits`` (``none``: float training, float weights reported). ``max_drop``:
    allowed accuracy drop in percentage points. ``subset``/``test_subset``: seeded random subsets.
    ``cost_preset``: hardware preset for energy/latency/area (None: no cost model numbers)."""

    model: str
    data: str
    method: str
    array: ArraySpec
    method_options: Mapping[str, Any] = field(default_factory=dict)
    mapping: MappingOptions = MappingOptions()
    mapping_methods: tuple[str, ...] = DEFAULT_METHODS
    epochs: int = 5
    finetune_epochs: int = 2
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
        if self.quant not in QUANT_SCHEMES:
            raise ConfigError(f"quant must be one of {', '.join(QUANT_SCHEMES)}, got {self.quant!r}")
        if not self.max_drop >= 0:
            raise ConfigError(f"max_drop must be >= 0 percentage points, got {self.max_drop!r}")

    def baseline_key(self, image_size: int, in_channels: int) -> str:
        q = "float" if self.quant == "none" else f"{self.quant}{self.array.weight_bits}"
        if self.act_bits is not None:
            q += f"a{self.act_bits}"
        return (f"{self.model}-{self.data}-{in_channels}x{image_size}-{q}-e{self.epochs}"
                f"-n{self.subset or 'all'}-t{self.test_subset or 'all'}-s{self.seed}")

    def run_key(self) -> str:
        """A digest of everything that shapes the rounds: a resumed run must match it."""
        d = asdict(self)
        for name in ("out_dir", "baseline_dir", "device", "cost_preset"):  # do not shape the rounds
            d.pop(name)
        d["mapping_methods"] = list(self.mapping_methods)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

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
    return train, test, (train.in_channels, size, size)


def _fresh_model(config: CompressConfig, train: Any, input_shape: tuple[int, int, int]) -> torch.nn.Module:
    from imcflow.models import create_model, get_spec

    kwargs = {"input_size": input_shape[1:]} if get_spec(config.model).sized else {}
    model = create_model(config.model, num_classes=train.num_classes, in_channels=input_shape[0], **kwargs)
    if config.quant != "none":
        from imcflow.quant import quantize_model

        quantize_model(model, config.array.weight_bits, config.act_bits, config.quant)
    return model


def _train_config(config: CompressConfig, epochs: int, lr: float, seed: int):
    from imcflow.train import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=config.batch_size, lr=lr, seed=seed,
                       device=config.device)


def train_baseline(config: CompressConfig, train: Any, test: Any, input_shape: tuple[int, int, int],
                   progress: bool = True) -> tuple[torch.nn.Module, float, float]:
    """The cached baseline: (model, test accuracy, seconds spent training now; 0 when reused)."""
    from imcflow.train import evaluate, fit

    base_root = Path(config.baseline_dir or os.path.join(config.out_dir, "baselines"))
    folder = base_root / config.baseline_key(input_shape[1], input_shape[0])
    final = folder / "baseline.pt"
    model = _fresh_model(config, train, input_shape)
    if final.is_file():
        state = torch.load(final, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        _log(progress, f"baseline reused: {final} (accuracy {state['accuracy']:.4f})")
        return model, float(state["accuracy"]), 0.0
    folder.mkdir(parents=True, exist_ok=True)
    _log(progress, f"training baseline {config.model} on {config.data} for {config.epochs} epochs "
                   f"-> {folder}")
    t0 = time.perf_counter()
    fit(model, train, test, _train_config(config, config.epochs, config.lr, config.seed),
        checkpoint_dir=folder, resume=True, progress=progress)
    seconds = time.perf_counter() - t0
    acc = evaluate(model, test)
    tmp = final.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "accuracy": acc, "config": config.to_dict()}, tmp)
    os.replace(tmp, final)  # atomic: a half-written baseline is never reused
    _log(progress, f"baseline accuracy {acc:.4f} ({seconds:.0f} s)")
    return model, acc, seconds


def _save_model(model: torch.nn.Module, path: Path) -> None:
    # Whole module: channel pruning changes shapes, so a state dict alone could not be reloaded.
    tmp = path.with_suffix(".tmp")
    torch.save(model, tmp)
    os.replace(tmp, path)


def _load_model(path: Path) -> torch.nn.Module:
    return torch.load(path, map_location="cpu", weights_only=False)


def _context(config: CompressConfig, model: torch.nn.Module, input_shape: tuple[int, ...],
             options: Mapping[str, Any], index: int) -> CompressionContext:
    return CompressionContext(config.array, config.mapping, options,
                              extract_network(model, input_shape, config.model), tuple(input_shape), index)


def run_compression(config: CompressConfig, progress: bool = True,
                    on_round: Callable[[RoundRecord], None] | None = None) -> CompressionReport:
    """Baseline -> rounds (apply, fine-tune, accept or stop) -> deployed report, resumable."""
    from imcflow.train import evaluate, fit

    t_start = time.perf_counter()
    method = get_method(config.method)
    options = method.resolve_options(config.method_options)
    train, test, input_shape = _data(config)
    baseline, base_acc, base_seconds = train_baseline(config, train, test, input_shape, progress)

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_file = out / "state.json"
    key = config.run_key()
    state: dict[str, Any] = {"key": key, "rounds": [], "finished": False}
    if state_file.is_file():
        saved = json.loads(state_file.read_text())
        if saved.get("key") != key:
            raise ConfigError(f"{out} holds a run with other settings (state.json key {saved.get('key')} "
                              f"vs {key}); use another --out or delete that folder")
        state = saved
    rounds = [RoundRecord(r["round"], r["accuracy"], r["accepted"], r["seconds"], r.get("summary", {}))
              for r in state["rounds"]]

    def save_state() -> None:
        state["rounds"] = [r.to_dict() for r in rounds]
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, state_file)

    accepted = [r for r in rounds if r.accepted]
    model = _load_model(out / f"round{accepted[-1].index}" / "done.pt") if accepted else \
        _load_model_copy(baseline)
    accuracy = accepted[-1].accuracy if accepted else base_acc
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
        if pruned_file.is_file():
            candidate = _load_model(pruned_file)
            summary = json.loads((folder / "summary.json").read_text())
        else:
            step = method.apply(_load_model_copy(model), ctx)
            if not step.changed:
                _log(progress, f"round {index}: nothing left to change ({json.dumps(dict(step.summary))[:200]})")
                break
            candidate, summary = step.model, dict(step.summary)
            (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
            _save_model(candidate, pruned_file)
        _log(progress, f"round {index}: {method.name} applied; fine-tuning {config.finetune_epochs} epoch(s)")
        hooks = method.hooks(candidate, ctx)
        fit(candidate, train, test, _train_config(config, config.finetune_epochs, config.finetune_lr,
                                                  config.seed + index + 1),
            checkpoint_dir=folder, resume=True, extra_loss=hooks.extra_loss,
            after_step=hooks.after_step, progress=progress)
        acc = evaluate(candidate, test)
        ok = 100.0 * (base_acc - acc) <= config.max_drop
        record = RoundRecord(index, acc, ok, time.perf_counter() - t0, summary)
        rounds.append(record)
        if ok:
            _save_model(candidate, folder / "done.pt")
            model, accuracy = candidate, acc
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
    report = CompressionReport(config.model, config.data, method.name, options, config.array,
                               config.mapping, base_acc, accuracy, deployed_base, deployed,
                               tuple(rounds), seconds,
                               {**config.to_dict(), "input_shape": list(input_shape)})
    tmp = out / "report.tmp"
    tmp.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    os.replace(tmp, out / "report.json")
    return report


def _load_model_copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)


def default_out_dir(config: CompressConfig) -> str:
    """``runs/compress/<model>-<data>-<method>-<array>-w<bits>``."""
    return os.path.join("runs", "compress", f"{config.model}-{config.data}-{config.method}-"
                        f"{config.array.label}-w{config.array.weight_bits}")


def with_out_dir(config: CompressConfig, out_dir: str | None) -> CompressConfig:
    return replace(config, out_dir=out_dir or default_out_dir(config))
