"""Extract the per-layer figures of DNN+NeuroSim V1.4 logs into the small CSV the tests compare with.

Usage: ``python scripts/extract_neurosim_reference.py LOG_DIR OUT_CSV``, with LOG_DIR holding the
reference logs (``run_v14_full_nsnet_imctrace.log``, ``run_v14lbl_full_nsnet_imctrace.log``,
``run_v14_full_imcpadded_imctrace.log``: DNN+NeuroSim V1.4 at commit ac828e6, stock makefile, VGG-8,
arguments ``8 8 128 128``; see tests/data/neurosim/SOURCE.md). One row per (run, layer) plus a
``chip`` row per run; latency in ns, energy in pJ, area in um^2, as NeuroSim prints them.
"""
from __future__ import annotations

import csv
import os
import sys

from imcflow.frontends.neurosim_log import read_neurosim_log

RUNS = {"pipelined": "run_v14_full_nsnet_imctrace.log",
        "layer-by-layer": "run_v14lbl_full_nsnet_imctrace.log",
        "pipelined-padded": "run_v14_full_imcpadded_imctrace.log"}
FIELDS = ("latency_s", "energy_j", "leakage_energy_j", "buffer_latency_s", "buffer_energy_j",
          "ic_latency_s", "ic_energy_j", "adc_latency_s", "accum_latency_s", "other_latency_s",
          "adc_energy_j", "accum_energy_j", "other_energy_j")


def _unit(field: str, value: float) -> float:
    return value * (1e9 if field.endswith("_s") else 1e12)


def main(log_dir: str, out: str) -> None:
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["run", "layer", "tiles", "speed_up", *[f.replace("_s", "_ns").replace("_j", "_pj")
                                                          for f in FIELDS], "area_um2"])
        for run, name in RUNS.items():
            log = read_neurosim_log(os.path.join(log_dir, name))
            for i, layer in enumerate(log.layers, start=1):
                w.writerow([run, i, log.tiles[i - 1], log.speed_up[i - 1],
                            *[f"{_unit(f, layer[f]):.6g}" for f in FIELDS], ""])
            chip = log.chip
            w.writerow([run, "chip", sum(log.tiles), "",
                        *[f"{_unit(f, chip[f]):.6g}" if f in chip else "" for f in FIELDS],
                        f"{chip['area_mm2'] * 1e6:.6g}"])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
