"""One comparison: several compression arms on one model, data set and array, each with several seeds,
under the pipeline's rules; one table, one Pareto plot (accuracy vs cycles, per mapping), raw JSON.

A comparison is a YAML (or JSON) file::

    model: resnet20
    data: fashion-mnist
    image_size: 32
    array: 256x256          # rows x cols; weight_bits / cell_bits optional (default 4 / 1)
    quant: uniform          # as imcflow compress (--quant)
    epochs: 3               # baseline
    finetune_epochs: 10     # budget per round; patience and val_fraction as in imcflow compress
    subset: 4000
    test_subset: 1000
    seeds: [0, 1, 2]
    arms:
      - name: dense
        method: none
      - name: group-lowrank
        method: group-lowrank
        options: {ratio: 0.5}
      - name: filter@sdk
        method: filter-prune
        match: {arm: group-lowrank, by: cycles, mapping: sdk}   # or by: energy_j / params

An arm with ``match`` gets, per seed, the referenced arm's compressed cycles (or energy, or
parameters) under ``mapping`` as its target (``target_cycles`` / ``target_energy_j`` /
``target_params`` with ``match_mapping``), so the referenced arm is listed first. Every (arm, seed)
is one :func:`~imcflow.compress.pipeline.run_compression` run in ``<out>/<arm>/seed<k>`` sharing the
baseline cache ``<out>/baselines``: an interrupted comparison resumes where it stopped, and a finished
run is only read back. Outputs: ``<out>/compare.json`` (every seed's numbers, every metric's spread,
every pair of arms whose test-accuracy difference is within the spread), ``<out>/compare.md`` (the
table) and ``<out>/pareto.png``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imcflow.compress.seeds import DEFAULT_SEEDS, SeedRuns, compare_arms, compression_metrics
from imcflow.errors import ConfigError, FormatError
from imcflow.mapping import strategy_names

MATCH_KINDS = {"cycles": "target_cycles", "energy_j": "target_energy_j", "params": "target_params"}
_TOP = {"model", "data", "image_size", "array", "weight_bits", "cell_bits", "quant", "epochs",
        "finetune_epochs", "patience", "val_fraction", "subset", "test_subset", "seeds", "arms",
        "max_drop", "lr", "finetune_lr", "batch_size", "data_root", "cost_preset", "mappings"}
_ARM = {"name", "method", "options", "match"}


@dataclass(frozen=True)
class Arm:
    name: str
    method: str
    options: Mapping[str, Any] = field(default_factory=dict)
    match: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "options": dict(self.options),
                "match": dict(self.match) if self.match else None}


@dataclass(frozen=True)
class CompareConfig:
    """A parsed comparison file: the shared settings (``base``, keyword arguments of
    :class:`~imcflow.compress.pipeline.CompressConfig` except method and seed), the arms, the seeds."""

    base: Mapping[str, Any]
    arms: tuple[Arm, ...]
    seeds: tuple[int, ...] = DEFAULT_SEEDS

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "comparison") -> CompareConfig:
        from imcflow.hardware.array import parse_array

        unknown = sorted(set(d) - _TOP)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_TOP)}")
        for key in ("model", "data", "array", "arms"):
            if key not in d:
                raise ConfigError(f"{where}: missing key {key!r}")
        base = {k: v for k, v in d.items() if k not in ("arms", "seeds", "array", "weight_bits",
                                                         "cell_bits", "mappings")}
        base["array"] = parse_array(str(d["array"]), cell_bits=int(d.get("cell_bits", 1)),
                                    weight_bits=int(d.get("weight_bits", 4)))
        if "mappings" in d:
            base["mapping_methods"] = tuple(d["mappings"])
        arms: list[Arm] = []
        for i, a in enumerate(d["arms"] or []):
            if not isinstance(a, Mapping) or "name" not in a or "method" not in a:
                raise ConfigError(f"{where}: arms[{i}] needs a name and a method, got {a!r}")
            bad = sorted(set(a) - _ARM)
            if bad:
                raise ConfigError(f"{where}: arms[{i}] ({a['name']}): unknown key(s) {bad}; allowed: "
                                  f"{sorted(_ARM)}")
            match = a.get("match")
            if match is not None:
                names = [x.name for x in arms]
                if match.get("arm") not in names:
                    raise ConfigError(f"{where}: arm {a['name']!r} matches arm {match.get('arm')!r}, "
                                      f"which is not listed before it; earlier arms: {names}")
                if match.get("by") not in MATCH_KINDS:
                    raise ConfigError(f"{where}: arm {a['name']!r}: match.by must be one of "
                                      f"{', '.join(MATCH_KINDS)}, got {match.get('on')!r}")
            arms.append(Arm(str(a["name"]), str(a["method"]), dict(a.get("options") or {}), match))
        names = [a.name for a in arms]
        if not arms or len(set(names)) != len(names):
            raise ConfigError(f"{where}: arms must be a non-empty list with distinct names, got {names}")
        seeds = tuple(int(s) for s in d.get("seeds", DEFAULT_SEEDS))
        return cls(base, tuple(arms), seeds)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CompareConfig:
        import yaml

        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise FormatError(f"{p}: cannot read the comparison file: {exc}") from None
        if not isinstance(data, Mapping):
            raise FormatError(f"{p}: a comparison file is a mapping of settings, got {type(data).__name__}")
        return cls.from_dict(data, str(p))


@dataclass(frozen=True)
class ComparisonResult:
    """Every arm's :class:`SeedRuns`, the per-seed reports' numbers, and the flagged pairs."""

    config: CompareConfig
    runs: Mapping[str, SeedRuns]
    per_seed: Mapping[str, Sequence[Mapping[str, Any]]]
    mappings: tuple[str, ...]

    def within_spread(self, metric: str = "test_accuracy") -> list[dict[str, Any]]:
        names = list(self.runs)
        out = []
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                d = compare_arms(a, self.runs[a].metrics[metric], b, self.runs[b].metrics[metric])
                if d.within_spread:
                    out.append(d.to_dict())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"arms": [a.to_dict() for a in self.config.arms], "seeds": list(self.config.seeds),
                "settings": {k: (v.label if k == "array" else v) for k, v in self.config.base.items()},
                "runs": {k: v.to_dict() for k, v in self.runs.items()},
                "per_seed": {k: list(v) for k, v in self.per_seed.items()},
                "within_spread_test_accuracy": self.within_spread()}

    def table(self) -> str:
        from imcflow.report.results import markdown_table

        head = ["arm", "method", "matched on", "test top-1 % mean +- std (min-max)", "parameters"]
        head += [f"{m} cycles" for m in self.mappings]
        rows = []
        for arm in self.config.arms:
            r = self.runs[arm.name].metrics
            acc = r["test_accuracy"]
            match = (f"{arm.match['by']} of {arm.match['arm']}"
                     + (f" under {arm.match.get('mapping', 'vwsdk')}" if arm.match["by"] != "params"
                        else "")) if arm.match else "-"
            rows.append([arm.name, arm.method, match,
                         f"{100 * acc.mean:.2f} +- {100 * acc.std:.2f} ({100 * acc.min:.2f}-"
                         f"{100 * acc.max:.2f})", f"{r['parameters'].mean:,.0f}"]
                        + [f"{r[f'cycles_{m}'].mean:,.0f}" for m in self.mappings])
        flagged = self.within_spread()
        notes = "\n".join(f"- {f['a']} vs {f['b']}: test top-1 differs by {100 * f['delta']:+.2f} points, "
                          f"within the spread ({100 * f['spread']:.2f})" for f in flagged)
        return markdown_table(head, rows) + (f"\nNot separated by the seeds:\n{notes}\n" if notes else "")


def run_compare(config: CompareConfig, out_dir: str | os.PathLike, progress: bool = False
                ) -> ComparisonResult:
    """Run every (arm, seed) (resumable), then summarise."""
    from imcflow.compress.pipeline import CompressConfig, run_compression
    from imcflow.compress.seeds import run_seeds

    out = Path(out_dir)
    reports: dict[tuple[str, int], Any] = {}
    settings = dict(config.base)
    settings.setdefault("baseline_dir", str(out / "baselines"))

    def arm_config(arm: Arm, seed: int) -> CompressConfig:
        options = dict(arm.options)
        if arm.match:
            ref = reports[(arm.match["arm"], seed)]
            on, mapping = arm.match["by"], str(arm.match.get("mapping", "vwsdk"))
            if on == "cycles":
                options["target_cycles"] = ref.compressed.summary(mapping).cycles
            elif on == "energy_j":
                energy = ref.compressed.energy_j(mapping)
                if energy is None:
                    raise ConfigError(f"arm {arm.name!r}: match on energy_j needs a cost_preset")
                options["target_energy_j"] = energy
            else:
                options["target_params"] = ref.compressed.parameters
            if on != "params":
                options["match_mapping"] = mapping
        return CompressConfig(method=arm.method, method_options=options, seed=seed,
                              out_dir=str(out / arm.name / f"seed{seed}"), **settings)

    runs: dict[str, SeedRuns] = {}
    per_seed: dict[str, list[dict[str, Any]]] = {}
    for arm in config.arms:
        def one(seed: int, arm: Arm = arm) -> dict[str, float]:
            # resume=True: a finished (arm, seed) is read back, an interrupted one continues.
            report = run_compression(arm_config(arm, seed), progress=progress, resume=True)
            reports[(arm.name, seed)] = report
            metrics = compression_metrics(report)
            per_seed.setdefault(arm.name, []).append({"seed": seed, **metrics})
            return metrics

        runs[arm.name] = run_seeds(one, config.seeds, arm.name)
    mappings = tuple(settings.get("mapping_methods", strategy_names()))
    return ComparisonResult(config, runs, per_seed, mappings)


def write_compare(result: ComparisonResult, out_dir: str | os.PathLike) -> list[str]:
    """compare.json, compare.md and pareto.png in ``out_dir``; returns the paths written."""
    from imcflow.io import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "compare.json", result.to_dict(), default=str)
    atomic_write_text(out / "compare.md", result.table())
    return [str(out / "compare.json"), str(out / "compare.md"),
            plot_pareto(result, str(out / "pareto.png"))]


def plot_pareto(result: ComparisonResult, path: str) -> str:
    """Test accuracy (mean, error bar min-max) against cycles, one panel per mapping."""
    from imcflow.report.plots import _pyplot, _save

    plt = _pyplot()
    n = len(result.mappings)
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.5), squeeze=False)
    for ax, m in zip(axes[0], result.mappings, strict=True):
        for name, run in result.runs.items():
            acc, cyc = run.metrics["test_accuracy"], run.metrics[f"cycles_{m}"]
            ax.errorbar([cyc.mean], [100 * acc.mean],
                        yerr=[[100 * (acc.mean - acc.min)], [100 * (acc.max - acc.mean)]],
                        fmt="o", capsize=3, label=name)
        ax.set_title(m)
        ax.set_xlabel("cycles (whole network)")
        ax.set_ylabel("test top-1 (%)")
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)  # atomic, closes the figure
    return path


__all__ = ["Arm", "CompareConfig", "ComparisonResult", "plot_pareto", "run_compare", "write_compare"]
