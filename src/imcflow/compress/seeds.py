"""Several seeds per arm: mean and spread of every measured number, and which differences between
arms are smaller than the spread.

An *arm* is one configuration (a method with its options on one model, data set and array). With
:func:`run_compression_seeds` it runs once per seed (each seed trains its own baseline, draws its own
subsets and validation split, and fine-tunes with its own order), and every number of the report
(test and validation accuracy, cycles per mapping, parameters, energy) gets a :class:`Spread`:
mean, sample standard deviation, min and max. :func:`compare_arms` flags a difference between two
arms' means that is no larger than the larger of their standard deviations as *within spread*: the
seeds cannot tell those arms apart on that number.

>>> a, b = spread([0.91, 0.93, 0.92]), spread([0.90, 0.95, 0.88])
>>> round(a.mean, 4), round(a.std, 4), (a.min, a.max)
(0.92, 0.01, (0.91, 0.93))
>>> d = compare_arms("a", a, "b", b)
>>> round(d.delta, 4), d.within_spread
(0.01, True)
"""
from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from imcflow.errors import ConfigError

DEFAULT_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Spread:
    """The values of one number over seeds, with their mean, sample std (0 for one value), min, max."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "min": self.min, "max": self.max,
                "n": len(self.values), "values": list(self.values)}


def spread(values: Sequence[float]) -> Spread:
    """A :class:`Spread` of finite numbers (at least one)."""
    vals = tuple(float(v) for v in values)
    if not vals or not all(math.isfinite(v) for v in vals):
        raise ConfigError(f"spread needs at least one finite value, got {list(values)!r}")
    return Spread(vals)


@dataclass(frozen=True)
class Difference:
    """Arm ``a`` minus arm ``b`` on one number: the difference of means, the spread it is compared
    with (the larger of the two standard deviations) and whether the two min-max ranges overlap."""

    a: str
    b: str
    delta: float
    spread: float
    ranges_overlap: bool

    @property
    def within_spread(self) -> bool:
        """True when |delta| is no larger than the spread: the seeds do not separate the arms."""
        return abs(self.delta) <= self.spread

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "delta": self.delta, "spread": self.spread,
                "within_spread": self.within_spread, "ranges_overlap": self.ranges_overlap}


def compare_arms(a_name: str, a: Spread, b_name: str, b: Spread) -> Difference:
    return Difference(a_name, b_name, a.mean - b.mean, max(a.std, b.std),
                      a.min <= b.max and b.min <= a.max)


@dataclass(frozen=True)
class SeedRuns:
    """One arm over several seeds: every metric's :class:`Spread`, and the per-seed values."""

    arm: str
    seeds: tuple[int, ...]
    metrics: Mapping[str, Spread]

    def to_dict(self) -> dict[str, Any]:
        return {"arm": self.arm, "seeds": list(self.seeds),
                "metrics": {k: v.to_dict() for k, v in self.metrics.items()}}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{"arm": self.arm, "metric": k, **v.to_dict()}
                             for k, v in self.metrics.items()])


def run_seeds(run: Callable[[int], Mapping[str, float]], seeds: Sequence[int] = DEFAULT_SEEDS,
              arm: str = "arm") -> SeedRuns:
    """Call ``run(seed)`` for every seed; each returns ``{metric: value}`` (the same metrics every
    time; a missing or None value is an error, so a spread never silently mixes seeds)."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct and at least one, got {list(seeds)!r}")
    per_seed = [dict(run(s)) for s in seeds]
    names = list(per_seed[0])
    for s, values in zip(seeds, per_seed, strict=True):
        if set(values) != set(names) or any(values[k] is None for k in names):
            raise ConfigError(f"arm {arm!r}, seed {s}: metrics {sorted(values)} differ from the first "
                              f"seed's {sorted(names)} or are missing")
    return SeedRuns(arm, tuple(seeds), {k: spread([v[k] for v in per_seed]) for k in names})


def compression_metrics(report: Any) -> dict[str, float]:
    """The numbers of a :class:`~imcflow.compress.base.CompressionReport` that vary over seeds:
    test (and validation) accuracy, parameters, and cycles and energy per mapping (compressed)."""
    out = {"test_accuracy": report.compressed_accuracy,
           "baseline_test_accuracy": report.baseline_accuracy,
           "parameters": float(report.compressed.parameters)}
    if report.compressed_val_accuracy is not None:
        out["val_accuracy"] = report.compressed_val_accuracy
    for m, s in report.compressed.summaries().items():
        out[f"cycles_{m}"] = float(s.cycles)
        energy = report.compressed.energy_j(m)
        if energy is not None:
            out[f"energy_j_{m}"] = energy
    return out


def run_compression_seeds(config: Any, seeds: Sequence[int] = DEFAULT_SEEDS, arm: str | None = None,
                          progress: bool = False) -> SeedRuns:
    """:func:`~imcflow.compress.pipeline.run_compression` once per seed, each in
    ``<config.out_dir>/seed<k>`` (resumable like any run), summarised by :func:`compression_metrics`."""
    from imcflow.compress.pipeline import run_compression

    def one(seed: int) -> dict[str, float]:
        cfg = replace(config, seed=seed, out_dir=os.path.join(config.out_dir, f"seed{seed}"))
        return compression_metrics(run_compression(cfg, progress=progress, resume=True))

    return run_seeds(one, seeds, arm or config.method)
