"""Start-up benchmark: ``imcflow map resnet18 --array 512x512`` from a fresh interpreter.

Run: ``python benchmarks/bench_cli_start.py [--repeat N]``. Each command runs ``N`` times in a new
process (what a user or a job script pays per call); the median and the fastest wall time are
reported, with the CPU time the process used (less sensitive to other jobs than wall time). Baselines in the same run: the bare interpreter (``python -c pass``), the interpreter with
numpy imported (the floor of any numpy program), and ``import torch`` (what a built-in model cost
before its layer list shipped as data). The target (issue 18) is under 0.8 s for the map command.
The machine is shared: the 1-minute load average is printed with the results, and the fastest run is
the number least disturbed by other jobs.
The last line reads ``map_resnet18_s=<median> fastest_s=<min> numpy_floor_s=<median> torch_import_s=<median>``.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import numpy": [sys.executable, "-c", "import numpy"],
    "import torch": [sys.executable, "-c", "import torch"],
    "imcflow map resnet18 --array 512x512": [sys.executable, "-m", "imcflow.cli", "map", "resnet18",
                                             "--array", "512x512"],
    "imcflow map vgg13-paper": [sys.executable, "-m", "imcflow.cli", "map", "vgg13-paper"],
}


def run_times(argv: list[str], repeat: int) -> tuple[list[float], list[float]]:
    """Wall times and CPU times (user + system of the child) of ``repeat`` fresh runs."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    wall, cpu = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per command (default 7)")
    args = parser.parse_args()
    results = {}
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores)")
    for label, argv in COMMANDS.items():
        t, cpu = run_times(argv, args.repeat)
        results[label] = t
        print(f"{label:40s} wall median {statistics.median(t):.3f} s  fastest {min(t):.3f} s  "
              f"CPU median {statistics.median(cpu):.3f} s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    m = results["imcflow map resnet18 --array 512x512"]
    print(f"map_resnet18_s={statistics.median(m):.3f} fastest_s={min(m):.3f} "
          f"numpy_floor_s={statistics.median(results['import numpy']):.3f} "
          f"torch_import_s={statistics.median(results['import torch']):.3f}")


if __name__ == "__main__":
    main()
