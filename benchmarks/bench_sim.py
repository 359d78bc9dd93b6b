"""Benchmark of the crossbar simulator against plain conv2d, on every layer of ResNet-20 (CIFAR).

One command: ``python benchmarks/bench_sim.py`` (options: ``--array``, ``--method``, ``--batch``,
``--threads``, ``--repeats``, ``--unfused`` to time the per-row-tile, per-input-step reference path,
``--smoke`` for a seconds-long run on two small layers, ``--weight-bits/--cell-bits/--signed`` to
replace the weight encoding of every configuration). For each configuration it programs the tiles of
every layer, runs a batch of random integer inputs through them (exactness checked against float64
conv2d) and times it against ``torch.nn.functional.conv2d`` (float32) of the same layers on the same
inputs, in the same run.

Configurations (issues 3 and 14): 8-bit weights in 2-bit cells with 8-bit bit-serial inputs (4 slices x
8 steps = 32 partial products per weight, floor 32x; target <= 64x); 1-bit weights in 1-bit cells with
one input step and im2col (floor 1x; target <= 5x); and the 8-bit configuration with an 8-bit ADC per
column read (full scale "max") and conductance variation sigma 0.02 (target: at most 2x the exact
8-bit configuration; its max relative error against conv2d is printed instead of exactness). Signed
weights use the offset encoding (reference columns), which adds no partial products per weight.

Last line: ``sim_ratio=<x> im2col_ratio=<y> noisy_ratio=<z> peak_rss_mb=<m>`` (ratios to conv2d).
"""
from __future__ import annotations

import argparse
import resource
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from imcflow.hardware.array import parse_array
from imcflow.layers import ConvLayer, Network
from imcflow.mapping import MappingOptions
from imcflow.sim import AdcSpec, CrossbarLayer, NoiseSpec, SimConfig, build_tiles, reference_conv


def resnet20_layers() -> Network:
    from imcflow.networks import load_network

    return load_network("resnet20")


def smoke_layers() -> Network:
    """Two small layers (a strided and a grouped one) for ``--smoke``."""
    return Network("smoke", (ConvLayer("a", 3, 8, 3, input_size=8, padding=1),
                             ConvLayer("b", 8, 8, 3, input_size=8, padding=1, stride=2, groups=2)))


def configurations(method: str, weight_bits: int | None = None, cell_bits: int | None = None,
                   signed: str | None = None) -> list[tuple[str, str, SimConfig, bool]]:
    """(name, method, config, exact expected) of every benchmarked configuration; the optional
    arguments replace the weight encoding of all of them."""
    base = [
        ("8b-w/2b-cell/8b-serial", method, SimConfig(weight_bits=8, cell_bits=2, input_bits=8), True),
        ("1b-w/1b-cell/1-step", "im2col", SimConfig(weight_bits=1, cell_bits=1), True),
        ("8b +8b-ADC +sigma0.02", method, SimConfig(weight_bits=8, cell_bits=2, input_bits=8,
                                                    adc=AdcSpec(8), noise=NoiseSpec(sigma=0.02)), False),
    ]
    out = []
    for name, m, cfg, exact in base:
        if weight_bits is not None or cell_bits is not None or signed is not None:
            cfg = replace(cfg, weight_bits=weight_bits or cfg.weight_bits,
                          cell_bits=cell_bits or cfg.cell_bits, signed=signed or cfg.signed)
            name = f"{name} as {cfg.weight_bits}b/{cfg.cell_bits}b {cfg.signed}"
        out.append((name, m, cfg, exact))
    return out


def run_config(net: Network, array_text: str, method: str, cfg: SimConfig, batch: int,
               repeats: int, seed: int = 0, fused: bool = True) -> tuple[float, float, bool, float]:
    """(simulator seconds, conv2d seconds, all exact, max relative error) over every layer; best of
    ``repeats``. The relative error is the largest ``|sim - conv2d|`` over the largest ``|conv2d|``
    of a layer."""
    return run_configs(net, array_text, method, [cfg], batch, repeats, seed, fused)[0]


def run_configs(net: Network, array_text: str, method: str, cfgs: list[SimConfig], batch: int,
                repeats: int, seed: int = 0, fused: bool = True) -> list[tuple[float, float, bool, float]]:
    """:func:`run_config` for several configurations with the same weight encoding, on the same
    data, timed alternately layer by layer (config 1, config 2, ..., conv2d, repeated): on a shared
    machine the load then changes the ratios between them much less than in separate passes."""
    cfg0 = cfgs[0]
    array = parse_array(array_text, cell_bits=cfg0.cell_bits, weight_bits=cfg0.weight_bits or 1)
    gen = torch.Generator().manual_seed(seed)
    xin_hi = (1 << cfg0.input_bits) - 1 if cfg0.input_bits else 1
    sim_t = [0.0] * len(cfgs)
    rel = [0.0] * len(cfgs)
    exact = [True] * len(cfgs)
    conv_t = 0.0
    for layer in net.layers:
        w = cfg0.random_weights((layer.out_channels, layer.group_in_channels, *layer.kernel_size), gen)
        x = torch.randint(0, xin_hi + 1, (batch, layer.in_channels, *layer.input_size), generator=gen).float()
        tiles = build_tiles(layer, w, array, method, MappingOptions())
        sims = [CrossbarLayer(tiles, cfg, fused=fused) for cfg in cfgs]
        w32 = w.float()
        best = [float("inf")] * len(cfgs)
        best_c = float("inf")
        outs: list = [None] * len(cfgs)
        for _ in range(repeats):
            for k, sim in enumerate(sims):
                t0 = time.perf_counter()
                outs[k] = sim.run(x)
                best[k] = min(best[k], time.perf_counter() - t0)
            t0 = time.perf_counter()
            F.conv2d(x, w32, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                     groups=layer.groups)
            best_c = min(best_c, time.perf_counter() - t0)
        for k, res in enumerate(outs):
            ref = reference_conv(layer, w, x).reshape(res.output.shape)
            exact[k] &= bool(torch.equal(res.output, ref))
            exact[k] &= res.counters.activations == tiles.plan.cycles * batch
            rel[k] = max(rel[k], float((res.output - ref).abs().max()) / max(float(ref.abs().max()), 1.0))
            sim_t[k] += best[k]
        conv_t += best_c
    return [(sim_t[k], conv_t, exact[k], rel[k]) for k in range(len(cfgs))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--array", default="128x128")
    ap.add_argument("--method", default="vwsdk", help="mapping of the 8-bit configuration")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--unfused", action="store_true",
                    help="time the reference path (one output per row tile and input step)")
    ap.add_argument("--smoke", action="store_true",
                    help="two small layers, batch 2, one repeat: checks that everything runs")
    ap.add_argument("--weight-bits", type=int, default=None, help="replace every configuration's")
    ap.add_argument("--cell-bits", type=int, default=None, help="replace every configuration's")
    ap.add_argument("--signed", choices=("offset", "differential"), default=None,
                    help="replace every configuration's")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net = smoke_layers() if args.smoke else resnet20_layers()
    batch, repeats = (2, 1) if args.smoke else (args.batch, args.repeats)
    configs = configurations(args.method, args.weight_bits, args.cell_bits, args.signed)
    ratios, seconds = [], []
    print(f"{'smoke layers' if args.smoke else 'ResNet-20'} ({len(net.layers)} layers), batch {batch}, "
          f"array {args.array}, {args.threads} thread(s){', unfused' if args.unfused else ''}")
    ok_all = True
    # The exact 8-bit and the noisy configuration share weights and data and are timed alternately.
    results = run_configs(net, args.array, configs[0][1], [configs[0][2], configs[2][2]], batch, repeats,
                          fused=not args.unfused)
    results.insert(1, run_config(net, args.array, configs[1][1], configs[1][2], batch, repeats,
                                 fused=not args.unfused))
    for (name, method, _, want_exact), (s, c, ok, rel) in zip(configs, results, strict=True):
        ratios.append(s / c)
        seconds.append(s)
        check = f"exact={ok}" if want_exact else f"max_rel_error={rel:.3g} ({s / seconds[0]:.2f}x exact)"
        ok_all &= ok or not want_exact
        print(f"{name:24s} {method:7s} sim {s:7.3f} s  conv2d {c:6.3f} s  ratio {s / c:6.1f}x  {check}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"sim_ratio={ratios[0]:.1f} im2col_ratio={ratios[1]:.1f} noisy_ratio={ratios[2]:.1f} "
          f"peak_rss_mb={rss_mb:.0f}")
    if not ok_all:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
