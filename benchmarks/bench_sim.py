"""Benchmark of the crossbar simulator against plain conv2d, on every layer of ResNet-20 (CIFAR).

One command: ``python benchmarks/bench_sim.py`` (options: ``--array``, ``--method``, ``--batch``,
``--threads``, ``--repeats``, ``--unfused`` to time the per-row-tile, per-input-step reference path). For each configuration it programs the tiles of every layer, runs a batch
of random integer inputs through them (exactness checked against float64 conv2d) and times it against
``torch.nn.functional.conv2d`` (float32) of the same layers on the same inputs, in the same run.

Configurations (issue 3): 8-bit weights in 2-bit cells with 8-bit bit-serial inputs (4 slices x 8 steps =
32 partial products per weight, floor 32x; target <= 64x), and 1-bit weights in 1-bit cells with one
input step and im2col (floor 1x; target <= 5x). Signed weights use the offset encoding (one reference
column per tile), which adds no partial products per weight.

Last line: ``sim_ratio=<x> im2col_ratio=<y> peak_rss_mb=<z>``.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch
import torch.nn.functional as F

from imcflow.hardware.array import parse_array
from imcflow.layers import Network
from imcflow.mapping import MappingOptions
from imcflow.sim import CrossbarLayer, SimConfig, build_tiles, reference_conv


def resnet20_layers() -> Network:
    from imcflow.networks import load_network

    return load_network("resnet20")


def run_config(net: Network, array_text: str, method: str, cfg: SimConfig, batch: int,
               repeats: int, seed: int = 0, fused: bool = True) -> tuple[float, float, bool]:
    """(simulator seconds, conv2d seconds, all exact) over every layer; best of ``repeats``."""
    array = parse_array(array_text, cell_bits=cfg.cell_bits, weight_bits=cfg.weight_bits or 1)
    gen = torch.Generator().manual_seed(seed)
    lo, hi = cfg.weight_range()
    xin_hi = (1 << cfg.input_bits) - 1 if cfg.input_bits else 1
    sim_t = conv_t = 0.0
    exact = True
    for layer in net.layers:
        w = torch.randint(lo, hi + 1, (layer.out_channels, layer.group_in_channels, *layer.kernel_size),
                          generator=gen).double()
        x = torch.randint(0, xin_hi + 1, (batch, layer.in_channels, *layer.input_size), generator=gen).float()
        sim = CrossbarLayer(build_tiles(layer, w, array, method, MappingOptions()), cfg, fused=fused)
        w32 = w.float()
        best_s = best_c = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = sim.run(x)
            best_s = min(best_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            F.conv2d(x, w32, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                     groups=layer.groups)
            best_c = min(best_c, time.perf_counter() - t0)
        ref = reference_conv(layer, w, x)
        exact &= bool(torch.equal(res.output, ref.reshape(res.output.shape)))
        exact &= res.counters.activations == sim.tiles.plan.cycles * batch
        sim_t += best_s
        conv_t += best_c
    return sim_t, conv_t, exact


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--array", default="128x128")
    ap.add_argument("--method", default="vwsdk", help="mapping of the 8-bit configuration")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--unfused", action="store_true",
                    help="time the reference path (one output per row tile and input step)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net = resnet20_layers()
    configs = [
        ("8b-w/2b-cell/8b-serial", args.method,
         SimConfig(weight_bits=8, cell_bits=2, input_bits=8, signed="offset")),
        ("1b-w/1b-cell/1-step", "im2col", SimConfig(weight_bits=1, cell_bits=1, signed="offset")),
    ]
    ratios = []
    print(f"ResNet-20 ({len(net.layers)} layers), batch {args.batch}, array {args.array}, "
          f"{args.threads} thread(s){', unfused' if args.unfused else ''}")
    for name, method, cfg in configs:
        s, c, ok = run_config(net, args.array, method, cfg, args.batch, args.repeats,
                              fused=not args.unfused)
        ratios.append(s / c)
        print(f"{name:24s} {method:7s} sim {s:7.3f} s  conv2d {c:6.3f} s  ratio {s / c:6.1f}x  "
              f"exact={ok}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"sim_ratio={ratios[0]:.1f} im2col_ratio={ratios[1]:.1f} peak_rss_mb={rss_mb:.0f}")


if __name__ == "__main__":
    main()
