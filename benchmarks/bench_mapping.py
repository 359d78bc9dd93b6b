"""Mapping sweep benchmark: ResNet-50, VGG-16 and MobileNetV2 on 14 array shapes, four methods.

Run: ``python benchmarks/bench_mapping.py``. The fast sweep maps every layer with im2col, SDK, VW-SDK
and flex (optimal search) through the public API, caches cleared first. The baseline does the same
job the straightforward way in the same run: every layer on every array, the VW-SDK and flex window
searches as plain per-candidate Python loops (imcflow.mapping.reference), no memoisation; both must
find the same cycles.
The last line reads ``sweep_s=<seconds> loop_s=<seconds> speedup=<ratio>``.
"""
from __future__ import annotations

import argparse
import gc
import time

from imcflow import ArraySpec, MappingOptions, load_network
from imcflow.mapping import base, flex, geometry, im2col, map_sweep, search
from imcflow.mapping import network as mapping_network
from imcflow.mapping.geometry import LayerProblem
from imcflow.mapping.reference import loop_strategies

MODELS = ("resnet50", "vgg16", "mobilenetv2")
SQUARE = (64, 128, 256, 512, 1024, 2048)
RECT = ((64, 128), (128, 64), (128, 256), (256, 128), (256, 512), (512, 256), (512, 1024),
        (1024, 512), (1024, 2048), (2048, 1024))
ARRAYS = tuple(ArraySpec(n, n) for n in SQUARE) + tuple(ArraySpec(r, c) for r, c in RECT)


def clear_caches() -> None:
    mapping_network._map_problem.cache_clear()
    mapping_network._problem.cache_clear()
    mapping_network._map_problem_many.cache_clear()
    geometry.axis_positions.cache_clear()
    geometry.candidate_sizes.cache_clear()
    geometry.window_pixel_index.cache_clear()
    base.lower_bounds.cache_clear()
    im2col.im2col_tiles.cache_clear()
    flex._tile_weights.cache_clear()
    search._grid.cache_clear()


def fast_sweep(networks) -> dict:
    totals = {}
    for net in networks:
        for r in map_sweep(net, ARRAYS, options=MappingOptions()):
            totals[(net.name, r.array.label)] = {m: r.totals(m).cycles for m in r.methods}
    return totals


def loop_sweep(networks) -> dict:
    """The same job done the straightforward way: every layer of every network on every array,
    each window search one Python iteration per candidate (a, b), no memoisation."""
    options = MappingOptions()
    strategies = loop_strategies()
    totals = {}
    for net in networks:
        for array in ARRAYS:
            t = dict.fromkeys(strategies, 0)
            for layer in net.layers:
                problem = LayerProblem.from_layer(layer)
                for name, strategy in strategies.items():
                    t[name] += strategy.map(problem, array, options, layer.name).cycles
            totals[(net.name, array.label)] = t
    return totals


def timed(fn, *args):
    """Wall time of one call with the garbage collector paused, as ``timeit`` does: a collection
    pass triggered by the many small result objects would otherwise land in whichever run it hits."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        out = fn(*args)
        return out, time.perf_counter() - t0
    finally:
        gc.enable()


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
        fast, seconds = timed(fast_sweep, networks)
        sweep_s = min(sweep_s, seconds)
    slow, loop_s = timed(loop_sweep, networks)
    if fast != slow:
        bad = [k for k in fast if fast[k] != slow[k]][:3]
        raise SystemExit(f"fast and loop searches disagree on {bad}")
    print("fast sweep and loop agree on every total")
    print(f"sweep_s={sweep_s:.3f} loop_s={loop_s:.3f} speedup={loop_s / sweep_s:.1f}")


if __name__ == "__main__":
    main()
