"""VWC-SDK measured end to end: ResNet-20 and CNN-8 on MNIST (32x32), arrays 256x512 and 512x256,
2-bit weights (uniform symmetric per-channel, trained in), 1-bit cells.

Each model's baseline is trained once (cached under ``<out>/baselines``) and shared by both arrays;
every (model, array) run then prunes round after round, fine-tunes each round and stops at the
1-point accuracy-drop rule. Prints a Markdown table (accuracy and cycles before/after, run time) and
writes ``<out>/results.json``. Rerunning reuses every finished step (the pipeline resumes).

    python scripts/exp_vwc_sdk.py --out runs/exp_vwc_sdk
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from imcflow.compress.pipeline import CompressConfig, run_compression
from imcflow.hardware.array import parse_array
from imcflow.io import atomic_write_json

MODELS = {  # model -> baseline epochs (CNN-8 trains ~7x faster per epoch than ResNet-20)
    "resnet20": 4,
    "cnn8": 6,
}
ARRAYS = ("256x512", "512x256")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/exp_vwc_sdk")
    p.add_argument("--subset", type=int, default=4000, help="MNIST training images (seeded subset)")
    p.add_argument("--test-subset", type=int, default=1000, help="MNIST test images (seeded subset)")
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", default=",".join(MODELS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = []
    for model in args.models.split(","):
        for label in ARRAYS:
            config = CompressConfig(
                model=model, data="mnist", method="vwc-sdk",
                array=parse_array(label, cell_bits=1, weight_bits=2), image_size=32,
                epochs=MODELS[model], finetune_epochs=args.finetune_epochs, subset=args.subset,
                test_subset=args.test_subset, quant="uniform", max_drop=1.0, device="cpu",
                out_dir=os.path.join(args.out, f"{model}-{label}"),
                baseline_dir=os.path.join(args.out, "baselines"))
            t = time.perf_counter()
            # resume=True: rerunning the script continues (and reuses) its own finished runs; a run
            # folder holding other settings is refused.
            report = run_compression(config, progress=True, resume=True)
            d = report.to_dict()
            rows.append({
                "model": model, "array": label,
                "baseline_accuracy": report.baseline_accuracy,
                "compressed_accuracy": report.compressed_accuracy,
                "cycles_vwsdk": [report.baseline.summary("vwsdk").cycles,
                                 report.compressed.summary("vwsdk").cycles],
                "cycles_best": [report.baseline.summary("best").cycles,
                                report.compressed.summary("best").cycles],
                "crossbars_vwsdk": [report.baseline.summary("vwsdk").arrays,
                                    report.compressed.summary("vwsdk").arrays],
                "parameters": [report.baseline.parameters, report.compressed.parameters],
                "energy_uj": [1e6 * (report.baseline.energy_j("vwsdk") or float("nan")),
                              1e6 * (report.compressed.energy_j("vwsdk") or float("nan"))],
                "rounds_kept": sum(r.accepted for r in report.rounds),
                "rounds_tried": len(report.rounds),
                "seconds_baseline": report.seconds["baseline_training"],
                "seconds_rounds": report.seconds["rounds"],
                "seconds_call": time.perf_counter() - t,
                "channels_after": [(l["name"], l["in_channels"], l["out_channels"])
                                   for l in d["compressed"]["layers"]],
            })
    total = time.perf_counter() - t0
    os.makedirs(args.out, exist_ok=True)
    atomic_write_json(os.path.join(args.out, "results.json"),
                      {"rows": rows, "total_seconds": total, "args": vars(args)})
    print("\n| model | array | top-1 before | top-1 after | VW-SDK cycles before -> after | "
          "best-mapping cycles before -> after | crossbars (VW-SDK) | params | rounds kept/tried | "
          "energy VW-SDK (uJ, ISAAC) | rounds (s) | this call (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cb, ca = r["cycles_vwsdk"]
        bb, ba = r["cycles_best"]
        print(f"| {r['model']} | {r['array']} | {100 * r['baseline_accuracy']:.2f}% | "
              f"{100 * r['compressed_accuracy']:.2f}% | {cb:,} -> {ca:,} ({cb / ca:.3f}x) | "
              f"{bb:,} -> {ba:,} ({bb / ba:.3f}x) | {r['crossbars_vwsdk'][0]} -> "
              f"{r['crossbars_vwsdk'][1]} | {r['parameters'][0]:,} -> {r['parameters'][1]:,} | "
              f"{r['rounds_kept']}/{r['rounds_tried']} | {r['energy_uj'][0]:.2f} -> "
              f"{r['energy_uj'][1]:.2f} | {r['seconds_rounds']:.0f} | {r['seconds_call']:.0f} |")
    print(f"\ntotal wall time {total:.0f} s")


if __name__ == "__main__":
    main()
