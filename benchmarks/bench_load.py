"""Loading and mapping a huge NeuroSim NetWork.csv: a 200,000-row file, read and mapped with all four
methods on a 512 x 512 array.

Run: ``python benchmarks/bench_load.py`` (``--rows N`` for another size). The rows cycle through the
layers of the published VGG-13 and ResNet-18 lists (a real file's mix: many rows, few distinct shapes). The baseline is the duplicate-layer-name check the loader used before, ``names.count`` per
name (quadratic), timed on ``--baseline-rows`` names in the same run and scaled by (rows/baseline)^2.
CPU seconds are printed besides wall seconds (on a shared machine the wall time includes waiting).
The last line reads ``load_s=<s> map_s=<s> old_check_s~<s> (extrapolated)``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from imcflow import ArraySpec, load_network
from imcflow.frontends.neurosim import read_neurosim_csv
from imcflow.mapping import map_network


def shape_rows() -> list[str]:
    """NetWork.csv rows (padded convention) of the published VGG-13 and ResNet-18 lists."""
    rows = []
    for model in ("vgg13-paper", "resnet18-paper"):
        try:
            net = load_network(model)
        except Exception:  # noqa: BLE001 - a layer list missing from this version: use the others
            continue
        for l in net.layers:
            rows.append(f"{l.H},{l.W},{l.IC},{l.Kh},{l.Kw},{l.OC},0,1")
    return rows or ["58,58,64,3,3,64,0,1", "30,30,128,3,3,128,0,1", "1,1,4096,1,1,1000,0,1"]


def old_duplicate_check(names: list[str]) -> list[str]:
    """The check as it was (quadratic): kept here only as the benchmark's baseline."""
    return sorted({n for n in names if names.count(n) > 1})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--baseline-rows", type=int, default=10_000)
    args = parser.parse_args()
    base = shape_rows()
    text = "\n".join(base[i % len(base)] for i in range(args.rows)) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "NetWork.csv")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        t0, c0 = time.perf_counter(), time.process_time()
        net = read_neurosim_csv(path)
        load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    result = map_network(net, ArraySpec(512, 512))
    map_s, map_cpu = time.perf_counter() - t0, time.process_time() - c0
    names = [f"layer{i}" for i in range(args.baseline_rows)]
    t0 = time.perf_counter()
    old_duplicate_check(names)
    old_s = (time.perf_counter() - t0) * (args.rows / args.baseline_rows) ** 2
    print(f"{len(net.layers):,} layers ({len(set(base))} distinct shapes), "
          f"flex total {result.totals('flex').cycles:,} cycles")
    print(f"cpu: load {load_cpu:.2f} s, map {map_cpu:.2f} s (wall time includes waiting for a busy CPU)")
    print(f"load_s={load_s:.2f} map_s={map_s:.2f} old_check_s~{old_s:.0f} (extrapolated from "
          f"{args.baseline_rows:,} names)")


if __name__ == "__main__":
    main()
