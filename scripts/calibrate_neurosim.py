"""Fit the calibrated constants of imcflow's NeuroSim chip model to DNN+NeuroSim V1.4's own figures.

Usage: ``python scripts/calibrate_neurosim.py [REFERENCE_CSV]`` (default
``tests/data/neurosim/v14_vgg8_reference.csv``, made by ``scripts/extract_neurosim_reference.py`` from
the reference logs). For each cost term the script takes the model's event counts
(:func:`imcflow.cost.periphery.chip_events`: conversions, bits through each buffer, bus transfers,
...) on NeuroSim's floor plan of every (run, layer) - VGG-8 pipelined, layer by layer, and pipelined
with padded sizes - and finds the non-negative per-event constants that minimise the relative error
against NeuroSim's per-layer breakdown (ADC, accumulation and other-periphery energy; buffer and
interconnect latency and energy). The same few constants serve every layer and both runs: they are
per-event energies, bits per cycle and cycles per transfer, not per-layer answers. It prints them
with the worst per-layer ratio of each term; the preset ``hardware/periphery/neurosim-sram22.yaml``
holds the values printed (rounded to 4 significant digits).
"""
from __future__ import annotations

import csv
import sys

import numpy as np
from scipy.optimize import nnls

from imcflow.cost.neurosim_floorplan import FloorplanSettings, plan_floor
from imcflow.cost.periphery import chip_events, load_chip_model

VGG8 = [(32, 32, 3, 3, 3, 128, 0, 1), (32, 32, 128, 3, 3, 128, 1, 1), (16, 16, 128, 3, 3, 256, 0, 1),
        (16, 16, 256, 3, 3, 256, 1, 1), (8, 8, 256, 3, 3, 512, 0, 1), (8, 8, 512, 3, 3, 512, 1, 1),
        (1, 1, 8192, 1, 1, 1024, 0, 1), (1, 1, 1024, 1, 1, 10, 0, 1)]
PADDED = [(h + 2 if k == 3 else h, w + 2 if k == 3 else w, ic, k, kw, oc, pool, s)
          for h, w, ic, k, kw, oc, pool, s in VGG8]
RUNS = {"pipelined": (VGG8, True), "layer-by-layer": (VGG8, False), "pipelined-padded": (PADDED, True)}


def fit(name: str, target: list[float], features: list[list[float]], labels: list[str],
        scale: list[float] | None = None) -> dict[str, float]:
    """Non-negative least squares of ``features @ coef = target``, each row's error relative to
    ``scale`` (default: its target; a small term is better measured against the layer's total)."""
    y = np.asarray(target, dtype=float)
    x = np.asarray(features, dtype=float)
    s = y if scale is None else np.asarray(scale, dtype=float)
    coef, _ = nnls(x / s[:, None], y / s)
    ratio = (x @ coef) / y
    print(f"{name}: " + ", ".join(f"{k}={v:.4g}" for k, v in zip(labels, coef, strict=False))
          + f"   model/NeuroSim in [{ratio.min():.3f}, {ratio.max():.3f}]")
    return dict(zip(labels, coef, strict=False))


def main(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        ref = [r for r in csv.DictReader(fh) if r["layer"] != "chip"]
    model = load_chip_model("neurosim-sram22")
    clk_ns = model["clock_period_s"] * 1e9
    events, obs = [], []
    for run, (rows, pipelined) in RUNS.items():
        fp = plan_floor(rows, FloorplanSettings(pipeline=pipelined))
        evs = chip_events(rows, model, fp, 8, 8, [model["reference_input_density"]] * len(rows))
        layer_refs = [r for r in ref if r["run"] == run]
        for e, r in zip(evs, layer_refs, strict=False):
            events.append(e)
            obs.append({k: float(v) for k, v in r.items() if k not in ("run", "layer", "area_um2") and v})
    n = [e.windows for e in events]
    nm = [1.0 if e.novel else 0.0 for e in events]
    fit("buffer latency [cycles per bit = 1/width]",
        [o["buffer_latency_ns"] / clk_ns for o in obs],
        [[w * e.tile_input_bits * f, w * e.tile_output_bits * f, w * e.tile_input_bits * (1 - f),
          w * e.tile_output_bits * (1 - f), e.global_bits] for e, w, f in zip(events, n, nm, strict=False)],
        ["nm_in", "nm_out", "cm_in", "cm_out", "global"])
    fit("interconnect latency [cycles]", [o["ic_latency_ns"] / clk_ns for o in obs],
        [[e.bus_input_transfers, e.bus_output_transfers, 1.0] for e in events], ["input", "output", "layer"])
    fit("accumulation latency [cycles per stage]", [o["accum_latency_ns"] / clk_ns for o in obs],
        [[e.adder_stages] for e in events], ["stage"], scale=[o["latency_ns"] / clk_ns for o in obs])
    fit("ADC energy [pJ]", [o["adc_energy_pj"] for o in obs],
        [[e.conversions, e.conversions * e.current] for e in events], ["fixed", "current"])
    fit("accumulation energy [pJ]", [o["accum_energy_pj"] for o in obs], [[e.conversions] for e in events],
        ["per_conversion"])
    fit("other-periphery energy w/o IC, buffer [pJ]",
        [o["other_energy_pj"] - o["ic_energy_pj"] - o["buffer_energy_pj"] for o in obs],
        [[e.conversions, e.conversions * e.current] for e in events], ["fixed", "current"])
    fit("interconnect energy [pJ]", [o["ic_energy_pj"] for o in obs],
        [[e.toggled_input_bits, e.toggled_output_bits, e.fanout_input_bits, e.fanout_output_bits]
         for e in events], ["bus_in", "bus_out", "fanout_in", "fanout_out"])
    fit("buffer energy [pJ]", [o["buffer_energy_pj"] for o in obs], [[e.global_bits] for e in events],
        ["per_bit"], scale=[o["energy_pj"] for o in obs])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/neurosim/v14_vgg8_reference.csv")
