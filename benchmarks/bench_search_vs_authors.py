"""VW-SDK window search speed against the authors' algorithm, on the same job in one process.

Job: the 15 published layers (ResNet-18's 5 and VGG-13's 10, paper geometry) on 6 arrays, 1-bit
weights. Baseline: the authors' VW-SDK search as the spec (mapping.md section 5, "paper-compatible
search") describes their published code, written here from that description (not their code): for each
layer and array, b outer in [1, H-Kh], a inner in [1, W-Kw], per candidate the ICt/OCt/tile/cycle
arithmetic in Python, selection by the FIFO queue rule. Measured against it, with every cache cleared
before each timed run:

* ``paper``: imcflow's bit-for-bit paper search (``--search paper``), which must return the same
  window and cycles on every layer and array;
* ``optimal``: imcflow's exhaustive optimal search (the default), whose cycles must equal the
  authors' wherever the authors' FIFO rule finds the true minimum, and never exceed them.

Both imcflow searches run through the public API (``map_sweep``: one vectorised search per layer for
all six arrays). The last line reads ``authors_s=<s> paper_s=<s> optimal_s=<s> paper_x=<r>
optimal_x=<r>``.
"""
from __future__ import annotations

import argparse
import math

from bench_mapping import clear_caches, timed

from imcflow import ArraySpec, MappingOptions, load_network
from imcflow.mapping import map_sweep

ARRAYS = (ArraySpec(128, 128), ArraySpec(256, 256), ArraySpec(512, 512), ArraySpec(1024, 1024),
          ArraySpec(256, 512), ArraySpec(512, 256))


def authors_vwsdk(H, W, Kh, Kw, IC, OC, R, C):
    """The published search as the spec describes it: (cycles, a, b) of the FIFO head, or None."""
    im2col = (H - Kh + 1) * (W - Kw + 1) * math.ceil(Kh * Kw * IC / R) * math.ceil(OC / C)
    queue = []
    for b in range(1, H - Kh + 1):  # outer loop: b, bounded by the height
        for a in range(1, W - Kw + 1):  # inner loop: a, bounded by the width
            pw_h, pw_w = Kh + a - 1, Kw + b - 1
            ict = math.floor(R / (pw_h * pw_w))
            oct_ = math.floor(C / (a * b))
            if ict == 0 or oct_ == 0:
                continue
            tr = math.ceil(IC / ict)
            tc = math.ceil(OC / oct_)
            n_pw = math.ceil((H - Kh + 1) / a) * math.ceil((W - Kw + 1) / b)
            cycles = n_pw * tr * tc
            if a == 1:
                queue.append((cycles, a, b))
            if queue and queue[0][0] > cycles:
                queue.pop(0)
                queue.append((cycles, a, b))
    if not queue:
        return im2col, None
    head = queue[0]
    return min(head[0], im2col), (head[1], head[2])


def authors_job(networks):
    out = {}
    for net in networks:
        for layer in net.layers:
            for array in ARRAYS:
                cycles, _ = authors_vwsdk(layer.H, layer.W, layer.Kh, layer.Kw, layer.in_channels,
                                          layer.out_channels, array.rows, array.cols)
                out[(net.name, layer.name, array.label)] = cycles
    return out


def imcflow_job(networks, search):
    out = {}
    options = MappingOptions(geometry="paper", search=search)
    for net in networks:
        for result in map_sweep(net, ARRAYS, ("vwsdk",), options):
            for r in result.layers:
                out[(net.name, r.layer.name, result.array.label)] = r.mappings["vwsdk"].cycles
    return out


def best_of(repeat, fn, *args):
    best, out = math.inf, None
    for _ in range(repeat):
        clear_caches()
        out, seconds = timed(fn, *args)
        best = min(best, seconds)
    return out, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each side (best is kept)")
    args = parser.parse_args()
    networks = [load_network("resnet18-paper"), load_network("vgg13-paper")]
    layers = [l for n in networks for l in n.layers]
    authors, authors_s = best_of(max(1, args.repeat // 2), authors_job, networks)
    paper, paper_s = best_of(args.repeat, imcflow_job, networks, "paper")
    optimal, optimal_s = best_of(args.repeat, imcflow_job, networks, "optimal")
    print(f"{len(layers)} layers x {len(ARRAYS)} arrays = {len(authors)} searches")
    if paper != authors:
        bad = [k for k in authors if paper[k] != authors[k]][:5]
        raise SystemExit(f"paper search differs from the authors' algorithm on {bad}")
    print("paper search: identical cycles on every layer and array")
    worse = [k for k in authors if optimal[k] > authors[k]]
    if worse:
        raise SystemExit(f"optimal search worse than the authors' on {worse[:5]}")
    same = sum(optimal[k] == authors[k] for k in authors)
    print(f"optimal search: never more cycles; identical on {same} of {len(authors)}, fewer on "
          f"{len(authors) - same} (where the FIFO rule misses the minimum)")
    print(f"authors_s={authors_s:.4f} paper_s={paper_s:.4f} optimal_s={optimal_s:.4f} "
          f"paper_x={authors_s / paper_s:.1f} optimal_x={authors_s / optimal_s:.1f}")


if __name__ == "__main__":
    main()
