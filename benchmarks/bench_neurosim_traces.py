"""Whole-network NeuroSim traces: VGG-8 from real images, end to end, and the file encoders' speed.

Run: ``python benchmarks/bench_neurosim_traces.py [--images 8] [--threads 1]``. Times, for the
built-in ``vgg8-cifar`` (random weights) and a batch of ``digits`` test images: loading the data, the
forward pass with the trace hooks (``network_traces``), encoding every file (``trace_set.files()``)
and writing them to a temporary folder. The baseline formats the same weight and input files value by
value in Python (``",".join(f"{v}" ...)``, what the first exporter did) in the same run; both must
give the same numbers. The last line reads ``total_s=<s> encode_MBps=<MB/s> baseline_MBps=<MB/s>
speedup=<ratio>``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch


def baseline_encode(weight_matrix: np.ndarray, bits: np.ndarray, weight_bits: int) -> bytes:
    scale = float(1 << (weight_bits - 1))
    w = "\n".join(",".join(f"{v / scale:.7f}" for v in row) for row in weight_matrix) + "\n"
    b = "\n".join(",".join(str(int(v)) for v in row) for row in bits) + "\n"
    return (w + b).encode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from imcflow.frontends.neurosim_traces import network_traces
    from imcflow.models import create_model
    from imcflow.train import load_dataset, prepare_inputs

    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = create_model("vgg8-cifar")
    data = load_dataset("digits", "test", image_size=32, in_channels=3, subset=args.images)
    images = prepare_inputs(data.images, data)
    t1 = time.perf_counter()
    trace_set, _ = network_traces(model, images, "vgg8")
    t2 = time.perf_counter()
    files = trace_set.files()
    t3 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        for name, blob in files.items():
            with open(os.path.join(d, name), "wb") as fh:
                fh.write(blob)
    t4 = time.perf_counter()
    mb = sum(len(b) for b in files.values()) / 1e6
    # Baseline on the two smallest layers (the per-value loop takes minutes on the whole network).
    small = sorted(trace_set.traces, key=lambda t: t.weight_matrix.size + t.input_columns.size)[:2]
    tb = time.perf_counter()
    base = [baseline_encode(t.weight_matrix, t.bit_matrix, t.weight_bits) for t in small]
    tb = time.perf_counter() - tb
    tv = time.perf_counter()
    fast = [b"".join(t.data_files().values()) for t in small]
    tv = time.perf_counter() - tv
    for a, b in zip(base, fast, strict=False):  # same numbers, whatever the padding of the fields
        assert np.array_equal(np.array(a.replace(b"\n", b",").split(b",")[:-1], dtype=float),
                              np.array(b.replace(b"\n", b",").split(b",")[:-1], dtype=float))
    small_mb = sum(len(b) for b in fast) / 1e6
    print(f"vgg8-cifar, {args.images} digits images, {len(trace_set.traces)} layers, {len(files)} files, "
          f"{mb:.1f} MB")
    print(f"data+model {t1 - t0:.2f} s, forward+traces {t2 - t1:.2f} s, encode {t3 - t2:.2f} s, "
          f"write {t4 - t3:.2f} s")
    print(f"total_s={t4 - t0:.2f} encode_MBps={small_mb / tv:.1f} baseline_MBps={small_mb / tb:.1f} "
          f"speedup={tb / tv:.1f}")


if __name__ == "__main__":
    main()
