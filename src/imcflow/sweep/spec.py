"""The sweep spec (YAML or JSON): which axes to vary, how to sample them, how trained points train.

Schema (every key optional unless marked; a scalar is a one-value list)::

    name: resnet-arrays              # str, used in logs and the report title
    axes:
      model: [resnet18, resnet50]    # required: built-in model names or network files
      array: ["128x128", "256x256"]  # required: RxC
      cell_bits: [1, 2]              # default: the preset's
      weight_bits: [8]               # default: the preset's
      adc_bits: [6, 8]               # default: the preset's adc.bits
      input_bits: [8]                # default: the preset's
      mapping: [im2col, sdk, vwsdk, flex, opt-energy]   # strategy names or opt-<objective>
      preset: [isaac]                # built-in preset names or preset files
      mode: [preloaded]              # preloaded | time-multiplexed
      geometry: [real]               # real | paper
      compression:                   # none (analytic point) or a compression method (trained point)
        - none
        - {method: magnitude, options: {sparsity: 0.5}}
    sampling:
      method: grid                   # grid | random | evolutionary
      points: 100                    # random: points drawn without replacement
      seed: 0                        # random, evolutionary
      population: 16                 # evolutionary: points per generation
      generations: 4                 # evolutionary
      mutation: 0.3                  # evolutionary: probability an axis takes a random value
      objective: edp_js              # evolutionary: result column to optimise
      direction: min                 # min | max
    training:                        # trained points only (compression other than none)
      data: digits
      epochs: 1
      finetune_epochs: 1
      batch_size: 64
      seed: 0
      subset: null
      test_subset: null
      quant: uniform
      max_drop: 100.0
      lr: 0.05
      finetune_lr: 0.01

Every mistake is a :class:`~imcflow.errors.ConfigError` naming the field, the value and what is allowed.
A *point* is a plain dict of one value per axis (defaults resolved from the preset), plus the training
settings for a trained point: it is what the cache key is computed from.
"""
from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import yaml

from imcflow.errors import ConfigError, FormatError, check_int

# Expansion order (the last axis varies fastest): points that share a mapping are neighbours, so a
# worker maps once and prices many presets and bit widths.
AXES: tuple[str, ...] = ("model", "array", "cell_bits", "weight_bits", "mapping", "geometry",
                         "compression", "preset", "mode", "adc_bits", "input_bits")
REQUIRED_AXES = ("model", "array")
INT_AXES = {"cell_bits": (1, 16), "weight_bits": (1, 32), "adc_bits": (1, 32), "input_bits": (1, 64)}
SAMPLING_METHODS = ("grid", "random", "evolutionary")
SAMPLING_KEYS = {"method", "points", "seed", "population", "generations", "mutation", "objective",
                 "direction"}
TRAINING_DEFAULTS: dict[str, Any] = {
    "data": "digits", "epochs": 1, "finetune_epochs": 1, "batch_size": 64, "seed": 0, "subset": None,
    "test_subset": None, "quant": "uniform", "max_drop": 100.0, "lr": 0.05, "finetune_lr": 0.01,
}
DEFAULTS: dict[str, list[Any]] = {
    "mapping": ["im2col", "sdk", "vwsdk", "flex"], "preset": ["isaac"], "mode": ["preloaded"],
    "geometry": ["real"], "compression": ["none"],
}


@dataclass(frozen=True)
class Sampling:
    method: str = "grid"
    points: int | None = None
    seed: int = 0
    population: int = 16
    generations: int = 4
    mutation: float = 0.3
    objective: str = "edp_js"
    direction: str = "min"


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: ``axes`` (name -> allowed values, defaults filled), sampling, training."""

    name: str
    axes: Mapping[str, tuple[Any, ...]] = field(hash=False)
    sampling: Sampling = Sampling()
    training: Mapping[str, Any] = field(default_factory=lambda: dict(TRAINING_DEFAULTS), hash=False)

    @property
    def size(self) -> int:
        """Points in the full cartesian product."""
        return math.prod(len(v) for v in self.axes.values())

    def point(self, index: tuple[int, ...]) -> dict[str, Any]:
        """The point at one index per axis, with defaults resolved and training settings attached."""
        values = {name: vals[i] for (name, vals), i in zip(self.axes.items(), index, strict=True)}
        return resolve_point(values, self.training)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "axes": {k: list(v) for k, v in self.axes.items()},
                "sampling": self.sampling.__dict__, "training": dict(self.training)}


def _as_list(name: str, value: Any) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"sweep spec: axes.{name} is empty; give at least one value")
    return values


def _check_axis(name: str, values: list[Any]) -> tuple[Any, ...]:
    from imcflow.cost.results import MODES
    from imcflow.hardware.array import parse_array
    from imcflow.mapping import strategy_names
    from imcflow.mapping.objective import OBJECTIVES, is_objective_name

    out: list[Any] = []
    for v in values:
        where = f"sweep spec: axes.{name}"
        if name in INT_AXES:
            lo, hi = INT_AXES[name]
            out.append(v if v is None else check_int(name, v, lo, hi, where=where))
        elif name == "array":
            out.append(parse_array(str(v)).label)
        elif name == "mapping":
            if not (isinstance(v, str) and (v in strategy_names() or is_objective_name(v))):
                allowed = [*strategy_names(), *(f"opt-{o}" for o in OBJECTIVES)]
                raise ConfigError(f"{where}: unknown mapping {v!r}; allowed: {', '.join(allowed)}")
            out.append(v)
        elif name == "mode":
            if v not in MODES:
                raise ConfigError(f"{where}: {v!r} is not allowed; allowed: {', '.join(MODES)}")
            out.append(v)
        elif name == "geometry":
            if v not in ("real", "paper"):
                raise ConfigError(f"{where}: {v!r} is not allowed; allowed: real, paper")
            out.append(v)
        elif name == "compression":
            out.append(_check_compression(v, where))
        else:  # model, preset: names or files, checked when loaded (a clear error then too)
            if not isinstance(v, str) or not v:
                raise ConfigError(f"{where}: expected a non-empty name, got {v!r}")
            out.append(v)
    if len(set(map(_canon, out))) != len(out):
        raise ConfigError(f"sweep spec: axes.{name} lists a value twice: {values!r}")
    return tuple(out)


def _check_compression(v: Any, where: str) -> Any:
    from imcflow.compress import method_names

    if v in (None, "none"):
        return "none"
    if isinstance(v, str):
        v = {"method": v}
    if not isinstance(v, dict) or "method" not in v or set(v) - {"method", "options"}:
        raise ConfigError(f"{where}: each entry is 'none', a method name or {{method: NAME, options: "
                          f"{{...}}}}, got {v!r}")
    if v["method"] not in method_names():
        raise ConfigError(f"{where}: unknown compression method {v['method']!r}; allowed: none, "
                          f"{', '.join(method_names())}")
    options = v.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: options of {v['method']!r} must be a mapping, got {options!r}")
    return {"method": v["method"], "options": options}


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def _check_sampling(raw: Any) -> Sampling:
    if raw is None:
        return Sampling()
    if isinstance(raw, str):
        raw = {"method": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep spec: sampling must be a mapping, got {raw!r}")
    unknown = set(raw) - SAMPLING_KEYS
    if unknown:
        raise ConfigError(f"sweep spec: unknown sampling key(s) {', '.join(sorted(unknown))}; allowed: "
                          f"{', '.join(sorted(SAMPLING_KEYS))}")
    method = raw.get("method", "grid")
    if method not in SAMPLING_METHODS:
        raise ConfigError(f"sweep spec: sampling.method {method!r} is not allowed; allowed: "
                          f"{', '.join(SAMPLING_METHODS)}")
    points = raw.get("points")
    if method == "random":
        if points is None:
            raise ConfigError("sweep spec: sampling.points is required for random sampling")
        check_int("points", points, 1, where="sweep spec: sampling")
    mutation = raw.get("mutation", 0.3)
    if not isinstance(mutation, (int, float)) or not 0 <= mutation <= 1:
        raise ConfigError(f"sweep spec: sampling.mutation must be a number in [0, 1], got {mutation!r}")
    direction = raw.get("direction", "min")
    if direction not in ("min", "max"):
        raise ConfigError(f"sweep spec: sampling.direction {direction!r} is not allowed; allowed: min, max")
    objective = raw.get("objective", "edp_js")
    from imcflow.sweep.points import OUTPUT_COLUMNS

    if method == "evolutionary" and objective not in OUTPUT_COLUMNS:
        raise ConfigError(f"sweep spec: sampling.objective {objective!r} is not a numeric result "
                          f"column; allowed: {', '.join(OUTPUT_COLUMNS)}")
    return Sampling(method, points, check_int("seed", raw.get("seed", 0), 0, where="sweep spec: sampling"),
                    check_int("population", raw.get("population", 16), 2, where="sweep spec: sampling"),
                    check_int("generations", raw.get("generations", 4), 1, where="sweep spec: sampling"),
                    float(mutation), objective, direction)


def _check_training(raw: Any) -> dict[str, Any]:
    if raw is None:
        return dict(TRAINING_DEFAULTS)
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep spec: training must be a mapping, got {raw!r}")
    unknown = set(raw) - set(TRAINING_DEFAULTS)
    if unknown:
        raise ConfigError(f"sweep spec: unknown training key(s) {', '.join(sorted(unknown))}; allowed: "
                          f"{', '.join(TRAINING_DEFAULTS)}")
    out = {**TRAINING_DEFAULTS, **raw}
    for key in ("epochs", "finetune_epochs", "batch_size"):
        check_int(key, out[key], 1, where="sweep spec: training")
    check_int("seed", out["seed"], 0, where="sweep spec: training")
    return out


def spec_from_dict(data: Any, name: str = "sweep") -> SweepSpec:
    """Validate a parsed spec; see the module docstring for the schema."""
    if not isinstance(data, dict):
        raise ConfigError(f"sweep spec: expected a mapping with 'axes', got {type(data).__name__}")
    unknown = set(data) - {"name", "axes", "sampling", "training"}
    if unknown:
        raise ConfigError(f"sweep spec: unknown key(s) {', '.join(sorted(unknown))}; allowed: name, axes, "
                          f"sampling, training")
    axes_raw = data.get("axes")
    if not isinstance(axes_raw, dict):
        raise ConfigError("sweep spec: 'axes' must be a mapping of axis name -> values; allowed axes: "
                          + ", ".join(AXES))
    bad = set(axes_raw) - set(AXES)
    if bad:
        raise ConfigError(f"sweep spec: unknown axis {', '.join(sorted(bad))}; allowed: {', '.join(AXES)}")
    for req in REQUIRED_AXES:
        if req not in axes_raw:
            raise ConfigError(f"sweep spec: axes.{req} is required")
    axes: dict[str, tuple[Any, ...]] = {}
    for axis in AXES:  # a fixed axis order: the same spec always expands in the same order
        raw = axes_raw.get(axis, DEFAULTS.get(axis, [None]))
        axes[axis] = _check_axis(axis, _as_list(axis, raw))
    return SweepSpec(str(data.get("name", name)), axes, _check_sampling(data.get("sampling")),
                     _check_training(data.get("training")))


def load_spec(path: str) -> SweepSpec:
    """Read a YAML or JSON sweep spec file."""
    if not os.path.isfile(path):
        raise ConfigError(f"sweep spec {path!r} is not a file")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise FormatError(f"sweep spec {path}: not valid {'JSON' if path.endswith('.json') else 'YAML'}: "
                          f"{exc}") from None
    stem = os.path.splitext(os.path.basename(path))[0]
    return spec_from_dict(data, name=stem)


@lru_cache(maxsize=64)
def _preset_defaults(preset: str) -> dict[str, int]:
    from imcflow.hardware.preset import load_preset

    p = load_preset(preset)
    return {"cell_bits": p["defaults.cell_bits"], "weight_bits": p["defaults.weight_bits"],
            "input_bits": p["defaults.input_bits"], "adc_bits": p["adc.bits"]}


def resolve_point(values: Mapping[str, Any], training: Mapping[str, Any]) -> dict[str, Any]:
    """Fill the preset's defaults for bit widths left open; attach training settings to trained
    points (analytic points do not depend on them, so their cache key ignores them)."""
    point = dict(values)
    defaults = _preset_defaults(point["preset"])
    for key, value in defaults.items():
        if point.get(key) is None:
            point[key] = value
    if point["compression"] != "none":
        point["training"] = dict(training)
    return point


def grid_indices(spec: SweepSpec) -> Iterator[tuple[int, ...]]:
    return itertools.product(*(range(len(v)) for v in spec.axes.values()))


def unravel(spec: SweepSpec, flat: int) -> tuple[int, ...]:
    sizes = [len(v) for v in spec.axes.values()]
    return tuple(int(i) for i in np.unravel_index(flat, sizes))


def random_indices(spec: SweepSpec, n: int, seed: int) -> list[tuple[int, ...]]:
    """``n`` distinct points of the product drawn with ``seed``, in product order."""
    total = spec.size
    if n >= total:
        return list(grid_indices(spec))
    rng = np.random.default_rng(seed)
    if total <= 10_000_000:
        flat = rng.choice(total, size=n, replace=False)
    else:  # too large to permute: draw until n distinct
        seen: set[int] = set()
        while len(seen) < n:
            seen.update(int(x) for x in rng.integers(0, total, size=n - len(seen)))
        flat = np.array(sorted(seen)[:n])
    return [unravel(spec, int(f)) for f in sorted(int(x) for x in flat)]


def axis_sizes(spec: SweepSpec) -> Sequence[int]:
    return [len(v) for v in spec.axes.values()]
