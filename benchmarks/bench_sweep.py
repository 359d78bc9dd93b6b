"""Sweep throughput: 10,800 analytic points of ResNet-50 (every built-in mapping and the energy-optimal
one, 12 arrays, 3 cell and 2 weight bit widths, 5 ADC and 3 input bit widths, both cost modes).

Run: ``python benchmarks/bench_sweep.py``. The same sweep runs three times in this process, each with
an empty cache: local executor with 1 worker, local with 2 workers, and a local 2-CPU Ray cluster
(started before its timing starts; its start-up time is printed separately). The three tables must be
identical. ResNet-50 is traced once before any timing (tracing is not part of a sweep's points).
The last line reads ``points=<n> seconds=<s> points_per_s=<r>`` for the default executor (local, 2
workers).
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time

from imcflow.sweep import run_sweep, spec_from_dict
from imcflow.sweep.points import _network

SPEC = {
    "name": "bench",
    "axes": {
        "model": "resnet50",
        "array": ["64x64", "128x128", "256x256", "512x512", "1024x1024", "64x128", "128x64", "128x256",
                  "256x128", "256x512", "512x256", "512x1024"],
        "cell_bits": [1, 2, 4], "weight_bits": [4, 8],
        "mapping": ["im2col", "sdk", "vwsdk", "flex", "opt-energy"],
        "adc_bits": [4, 5, 6, 7, 8], "input_bits": [4, 8, 16],
        "mode": ["preloaded", "time-multiplexed"],
    },
}


def timed_sweep(spec, executor, workers):
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = run_sweep(spec, out, executor, workers=workers, progress=False)
        seconds = time.perf_counter() - t0
    assert result.computed == spec.size, (result.computed, spec.size)
    return result.to_frame(), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    spec = spec_from_dict(SPEC)
    _network("resnet50")  # trace once, outside every timing
    print(f"{spec.size} analytic points (ResNet-50)")
    one, one_s = timed_sweep(spec, "local", 1)
    print(f"local 1 worker:  {one_s:.1f} s ({spec.size / one_s:.0f} points/s)")
    two, two_s = timed_sweep(spec, "local", 2)
    print(f"local 2 workers: {two_s:.1f} s ({spec.size / two_s:.0f} points/s); speedup 1 -> 2 workers "
          f"{one_s / two_s:.2f}x")
    if not two.equals(one):
        raise SystemExit("1 and 2 local workers gave different tables")
    if not args.no_ray:
        from imcflow.sweep.executors import RayExecutor

        t0 = time.perf_counter()
        ray_ex = RayExecutor(workers=2)
        start_s = time.perf_counter() - t0
        try:
            ray_frame, ray_s = timed_sweep(spec, ray_ex, 2)
        finally:
            ray_ex.close()
        print(f"local Ray cluster, 2 CPUs: {ray_s:.1f} s ({spec.size / ray_s:.0f} points/s) after "
              f"{start_s:.1f} s cluster start; local 2 workers / Ray = {ray_s / two_s:.2f}x time "
              f"(speedup local -> Ray {two_s / ray_s:.2f}x)")
        if not ray_frame.equals(two):
            raise SystemExit("Ray and local executors gave different tables")
        print("identical tables from all three runs")
    print(f"points={spec.size} seconds={two_s:.2f} points_per_s={spec.size / two_s:.1f}")


if __name__ == "__main__":
    main()
