"""Mapping sweep benchmark: ResNet-50, VGG-16 and MobileNetV2 on 14 array shapes, four methods.

Run: ``python benchmarks/bench_mapping.py``. The fast sweep maps every layer with im2col, SDK, VW-SDK
and flex (optimal search) through the public API, caches cleared first. The baseline runs the same
searches as plain per-candidate Python loops (imcflow.mapping.reference) on the same unique
(layer shape, array) problems, in the same run, and checks that both find the same cycles.
The last line reads ``sweep_s=<seconds> loop_s=<seconds> speedup=<ratio>``.
"""
from __future__ import annotations

import argparse
import time

from imcflow import ArraySpec, MappingOptions, load_network, map_network
from imcflow.mapping import geometry, network as mapping_network, search
from imcflow.mapping.geometry import LayerProblem, ceil_div
from imcflow.mapping.im2col import im2col_tiles
from imcflow.mapping.reference import flex_loop, vwsdk_loop
from imcflow.mapping.sdk import sdk_window

MODELS = ("resnet50", "vgg16", "mobilenetv2")
SQUARE = (64, 128, 256, 512, 1024, 2048)
RECT = ((64, 128), (128, 64), (128, 256), (256, 128), (256, 512), (512, 256), (512, 1024),
        (1024, 512), (1024, 2048), (2048, 1024))
ARRAYS = tuple(ArraySpec(n, n) for n in SQUARE) + tuple(ArraySpec(r, c) for r, c in RECT)


def clear_caches() -> None:
    mapping_network._map_problem.cache_clear()
    geometry.axis_positions.cache_clear()
    geometry.candidate_sizes.cache_clear()
    search._grid.cache_clear()


def fast_sweep(networks) -> dict:
    totals = {}
    for net in networks:
        for array in ARRAYS:
            r = map_network(net, array, options=MappingOptions())
            totals[(net.name, array.label)] = {m: r.totals(m).cycles for m in r.methods}
    return totals


def loop_sweep(networks) -> dict:
    """The same four searches, one Python iteration per candidate window."""
    options = MappingOptions()
    solved: dict = {}
    totals = {}
    for net in networks:
        problems = [LayerProblem.from_layer(l) for l in net.layers]
        for array in ARRAYS:
            t = {"im2col": 0, "sdk": 0, "vwsdk": 0, "flex": 0}
            for p in problems:
                key = (p, array)
                if key not in solved:
                    ar, ac = im2col_tiles(p, array)
                    im2col = p.out_h * p.out_w * ar * ac * p.groups
                    n = sdk_window(p, array, options)
                    sdk = ceil_div(p.out_h, n) * ceil_div(p.out_w, n) * ar * ac * p.groups
                    vw = vwsdk_loop(p, array)
                    vw_cycles = im2col if vw is None else min(vw[0] * p.groups, im2col)
                    solved[key] = {"im2col": im2col, "sdk": sdk, "vwsdk": vw_cycles,
                                   "flex": flex_loop(p, array)[0]}
                for m, v in solved[key].items():
                    t[m] += v
            totals[(net.name, array.label)] = t
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fast sweep repetitions (best is kept)")
    args = parser.parse_args()
    networks = [load_network(m) for m in MODELS]  # tracing is not part of the mapping sweep
    layers = sum(len(n.layers) for n in networks)
    unique = len({(LayerProblem.from_layer(l), a) for n in networks for l in n.layers for a in ARRAYS})
    print(f"{len(MODELS)} networks, {layers} layers, {len(ARRAYS)} arrays, 4 methods: "
          f"{layers * len(ARRAYS) * 4} layer mappings ({unique} unique layer-array problems)")
    sweep_s = float("inf")
    for _ in range(args.repeat):
        clear_caches()
        t0 = time.perf_counter()
        fast = fast_sweep(networks)
        sweep_s = min(sweep_s, time.perf_counter() - t0)
    t0 = time.perf_counter()
    slow = loop_sweep(networks)
    loop_s = time.perf_counter() - t0
    if fast != slow:
        bad = [k for k in fast if fast[k] != slow[k]][:3]
        raise SystemExit(f"fast and loop searches disagree on {bad}")
    print("fast sweep and loop agree on every total")
    print(f"sweep_s={sweep_s:.3f} loop_s={loop_s:.3f} speedup={loop_s / sweep_s:.1f}")


if __name__ == "__main__":
    main()
