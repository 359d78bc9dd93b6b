"""Objective-driven search speed: every layer of ResNet-50 on 16 arrays with ``--objective energy``.

Run: ``python benchmarks/bench_objective.py``. Caches cleared; ResNet-50 is traced before timing. The
search scores every candidate window and tiling of every distinct layer shape on every array with the
cost model (ISAAC preset, 8-bit weights in 2-bit cells). The last line reads
``layers=<n> arrays=<n> seconds=<s>``.
"""
from __future__ import annotations

import argparse
import time

from bench_mapping import clear_caches

from imcflow import ArraySpec, load_network
from imcflow.cost import CostSettings
from imcflow.hardware.preset import load_preset
from imcflow.mapping import map_sweep, objective
from imcflow.mapping.objective import objective_strategy

ARRAYS = tuple(ArraySpec(r, c, cell_bits=2, weight_bits=8) for r in (64, 128, 256, 512)
               for c in (64, 128, 256, 512))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs (best is kept)")
    args = parser.parse_args()
    net = load_network("resnet50")
    strategy = objective_strategy("energy", CostSettings(load_preset("isaac")))
    best = float("inf")
    for _ in range(args.repeat):
        clear_caches()
        objective.candidates.cache_clear()
        objective._step_times.cache_clear()
        t0 = time.perf_counter()
        results = map_sweep(net, ARRAYS, [strategy])
        best = min(best, time.perf_counter() - t0)
    total = sum(r.totals("opt-energy").cycles for r in results)
    print(f"ResNet-50 ({len(net.layers)} layers) x {len(ARRAYS)} arrays, opt-energy: {total:,} cycles "
          f"over all arrays")
    print(f"layers={len(net.layers)} arrays={len(ARRAYS)} seconds={best:.2f}")


if __name__ == "__main__":
    main()
