"""Evaluate one sweep point: analytic (map + cost) or trained (compress + fine-tune, then map + cost the
deployed network). A point is a plain dict (see :mod:`imcflow.sweep.spec`); the result is a flat dict
of the point's inputs and every output column, the same whichever process or machine computed it.

Analytic points need only numpy (plus torch to trace a built-in torch model, once per process); trained
points run :func:`imcflow.compress.pipeline.run_compression` in ``<work_dir>/trained/<key>``, one run
per :func:`trained_run_key` (the runner puts the points of one run in one task, so no two workers
share a run folder).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, cast

# Bump when the evaluation of a point changes its numbers: cached results of older code are then
# ignored instead of mixed with new ones.
CACHE_VERSION = 1

INPUT_COLUMNS: tuple[str, ...] = (
    "model", "array", "rows", "cols", "cell_bits", "weight_bits", "adc_bits", "input_bits", "mapping",
    "preset", "mode", "geometry", "compression", "compression_options", "training", "kind")
OUTPUT_COLUMNS: tuple[str, ...] = (
    "layers", "macs", "cycles", "arrays", "lower_bound", "cycles_over_lb", "mac_efficiency",
    "utilization", "latency_s", "energy_j", "edp_js", "area_mm2", "tops_per_w", "tops_per_mm2",
    "adc_energy_j", "accuracy", "baseline_accuracy", "accuracy_drop_pct", "weights", "nonzero_weights")


def point_key(point: Mapping[str, Any]) -> str:
    """Content address of a point: SHA-256 of its canonical JSON and :data:`CACHE_VERSION`.

    >>> point_key({"model": "m", "array": "8x8"}) == point_key({"array": "8x8", "model": "m"})
    True
    """
    text = json.dumps({"v": CACHE_VERSION, "point": point}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# The inputs a compression run depends on; pricing (mapping, preset, mode, ADC and input bits) is not.
TRAINING_INPUTS = ("model", "array", "cell_bits", "weight_bits", "geometry", "compression", "training")


def trained_run_key(point: Mapping[str, Any]) -> str:
    """Points that differ only in how the compressed network is mapped and priced share one run."""
    return point_key({k: point[k] for k in TRAINING_INPUTS})


@lru_cache(maxsize=32)
def _network(model: str):
    from imcflow.networks import load_network

    return load_network(model)


@lru_cache(maxsize=256)
def _preset(name: str, adc_bits: int):
    from imcflow.hardware.preset import load_preset

    return load_preset(name, [f"adc.bits={adc_bits}"])


def _strategy(mapping: str, settings):
    from imcflow.mapping.objective import is_objective_name, objective_strategy

    return objective_strategy(mapping, settings) if is_objective_name(mapping) else mapping


@lru_cache(maxsize=512)
def _plans(network, array, strategy, geometry: str):
    """The mapping of ``network`` under one strategy and its vectorised form, shared by every point
    that prices it differently (preset, ADC bits, input bits, mode)."""
    from imcflow.cost.fast import NetworkPlans
    from imcflow.mapping import MappingOptions, map_network
    from imcflow.mapping.base import Geometry

    mapping = map_network(network, array, (strategy,), MappingOptions(geometry=cast(Geometry, geometry)))
    method = mapping.methods[0]
    totals = mapping.totals(method)
    placed = sum(r.mappings[method].avg_utilization * r.mappings[method].arrays for r in mapping.layers)
    fixed = {"layers": len(mapping.layers), "macs": totals.macs, "cycles": totals.cycles,
             "arrays": totals.arrays, "lower_bound": totals.lower_bound,
             "cycles_over_lb": totals.cycles_over_lb, "mac_efficiency": totals.mac_efficiency,
             "utilization": placed / totals.arrays}
    return NetworkPlans.of(mapping, method), fixed


def network_figures(network, point: Mapping[str, Any]) -> dict[str, Any]:
    """Map ``network`` with the point's mapping on its array and cost it: the output columns."""
    from imcflow.cost import CostSettings
    from imcflow.hardware.array import ArraySpec, parse_array

    shape = parse_array(point["array"])
    array = ArraySpec(shape.rows, shape.cols, cell_bits=point["cell_bits"],
                      weight_bits=point["weight_bits"])
    preset = _preset(point["preset"], point["adc_bits"])
    settings = CostSettings(preset, point["mode"], point["input_bits"])
    plans, fixed = _plans(network, array, _strategy(point["mapping"], settings), point["geometry"])
    cost = plans.totals(settings)
    return {
        **fixed, "latency_s": cost.latency_s, "energy_j": cost.energy_j,
        "edp_js": cost.edp_js, "area_mm2": cost.area_mm2, "tops_per_w": cost.tops_per_w,
        "tops_per_mm2": cost.tops_per_mm2, "adc_energy_j": cost.energy_breakdown_j.get("adc"),
    }


def _inputs(point: Mapping[str, Any]) -> dict[str, Any]:
    from imcflow.hardware.array import parse_array

    shape = parse_array(point["array"])
    comp = point["compression"]
    return {
        "model": point["model"], "array": point["array"], "rows": shape.rows, "cols": shape.cols,
        "cell_bits": point["cell_bits"], "weight_bits": point["weight_bits"],
        "adc_bits": point["adc_bits"], "input_bits": point["input_bits"], "mapping": point["mapping"],
        "preset": point["preset"], "mode": point["mode"], "geometry": point["geometry"],
        "compression": comp if comp == "none" else comp["method"],
        "compression_options": "" if comp == "none" else json.dumps(comp["options"], sort_keys=True),
        "training": json.dumps(point["training"], sort_keys=True) if "training" in point else "",
        "kind": "analytic" if comp == "none" else "trained",
    }


def evaluate_point(point: Mapping[str, Any], work_dir: str | None = None,
                   networks: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every input and output column of one point (outputs that do not apply are None).

    ``networks`` (model name -> :class:`~imcflow.layers.Network`) saves a worker from loading (and
    tracing, with torch) the model itself; without it the model is loaded here, once per process."""
    row: dict[str, Any] = {**_inputs(point), **dict.fromkeys(OUTPUT_COLUMNS)}
    if point["compression"] == "none":
        network = networks[point["model"]] if networks and point["model"] in networks \
            else _network(point["model"])
        row.update(network_figures(network, point))
        row["weights"] = row["nonzero_weights"] = sum(int(l.weight_count) for l in network.layers)
    else:
        row.update(_trained(point, work_dir or "."))
    return row


def _trained(point: Mapping[str, Any], work_dir: str) -> dict[str, Any]:
    import torch

    from imcflow.compress.pipeline import CompressConfig, run_compression
    from imcflow.hardware.array import ArraySpec, parse_array
    from imcflow.mapping import MappingOptions
    from imcflow.mapping.base import Geometry

    torch.set_num_threads(1)  # one point per worker: the executor provides the parallelism
    t = point["training"]
    shape = parse_array(point["array"])
    array = ArraySpec(shape.rows, shape.cols, cell_bits=point["cell_bits"],
                      weight_bits=point["weight_bits"])
    run_dir = os.path.join(work_dir, "trained", trained_run_key(point)[:16])
    config = CompressConfig(
        model=point["model"], data=t["data"], method=point["compression"]["method"], array=array,
        method_options=point["compression"]["options"],
        mapping=MappingOptions(geometry=cast(Geometry, point["geometry"])),
        epochs=t["epochs"], finetune_epochs=t["finetune_epochs"], batch_size=t["batch_size"],
        lr=t["lr"], finetune_lr=t["finetune_lr"], seed=t["seed"], subset=t["subset"],
        test_subset=t["test_subset"], quant=t["quant"], max_drop=t["max_drop"], device="cpu",
        cost_preset=None, out_dir=run_dir, baseline_dir=os.path.join(run_dir, "baseline"))
    # resume: the run folder belongs to this point's training inputs; an interrupted sweep continues
    # its training, and the other points of the same run reuse the finished one.
    report = run_compression(config, progress=False, resume=True)
    out = network_figures(report.compressed.network, point)
    out.update(accuracy=report.compressed_accuracy, baseline_accuracy=report.baseline_accuracy,
               accuracy_drop_pct=report.accuracy_drop, weights=report.compressed.weights,
               nonzero_weights=report.compressed.nonzero_weights)
    return out


def evaluate_chunk(points: list[dict[str, Any]], work_dir: str | None = None,
                   networks: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Evaluate several points in one task (amortises the per-task overhead of an executor)."""
    return [evaluate_point(p, work_dir, networks) for p in points]
