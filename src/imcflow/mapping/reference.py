"""Straightforward per-candidate loops for the VW-SDK and flex searches.

These are the obvious implementations of mapping.md sections 5 and 5b: every (a, b) in [1, Ho] x
[1, Wo], one Python iteration each. The fast searches in :mod:`vwsdk` and :mod:`flex` must agree with
them (tests), and the benchmark reports its speedup against them.
"""
from __future__ import annotations

from imcflow.hardware.array import ArraySpec
from imcflow.mapping.base import MappingStrategy
from imcflow.mapping.flex import Flex
from imcflow.mapping.geometry import LayerProblem, ceil_div
from imcflow.mapping.im2col import Im2col
from imcflow.mapping.sdk import Sdk
from imcflow.mapping.vwsdk import VwSdk


def _key(cycles: int, tiles: int, a: int, b: int) -> tuple[int, int, int, int, int]:
    return (cycles, tiles, a * b, b, a)


def vwsdk_loop(problem: LayerProblem, array: ArraySpec) -> tuple[int, int, int] | None:
    """(cycles, a, b) of the best whole-channel window, or None if none fits (no im2col min here)."""
    best = None
    for a in range(1, problem.out_h + 1):
        for b in range(1, problem.out_w + 1):
            ict = array.rows // (problem.pixels_h(a) * problem.pixels_w(b))
            oct_ = array.usable_cols // (a * b)
            if ict == 0 or oct_ == 0:
                continue
            tr, tc = ceil_div(problem.ic, ict), ceil_div(problem.oc, oct_)
            cycles = ceil_div(problem.out_h, a) * ceil_div(problem.out_w, b) * tr * tc
            key = _key(cycles, tr * tc, a, b)
            if best is None or key < best:
                best = key
    return None if best is None else (best[0], best[4], best[3])


def paper_vwsdk_loop(problem: LayerProblem, array: ArraySpec) -> tuple[int, int] | None:
    """The published VW-SDK search, one candidate at a time: b outer in [1, Ho-1], a inner in
    [1, Wo-1], the FIFO queue rule (mapping.md section 5); (a, b) of the head, or None."""
    queue: list[tuple[int, int, int]] = []
    for b in range(1, problem.out_h):
        for a in range(1, problem.out_w):
            ict = array.rows // (problem.pixels_h(a) * problem.pixels_w(b))
            oct_ = array.usable_cols // (a * b)
            if ict == 0 or oct_ == 0:
                continue
            cycles = (ceil_div(problem.out_h, a) * ceil_div(problem.out_w, b)
                      * ceil_div(problem.ic, ict) * ceil_div(problem.oc, oct_))
            if a == 1:
                queue.append((cycles, a, b))
            if queue and queue[0][0] > cycles:
                queue.pop(0)
                queue.append((cycles, a, b))
    return (queue[0][1], queue[0][2]) if queue else None


def sdk_loop(problem: LayerProblem, array: ArraySpec, search: str = "optimal") -> int:
    """SDK's window size n, trying n = 1, 2, ... until the frozen im2col budget is exceeded."""
    ar0 = ceil_div(problem.taps * problem.ic, array.rows)
    ac0 = ceil_div(problem.oc, array.usable_cols)
    cols = array.cols if search == "paper" else array.usable_cols
    best_n, best_cycles = 1, problem.out_h * problem.out_w
    for n in range(2, max(problem.out_h, problem.out_w) + 1):
        if (problem.pixels_h(n) * problem.pixels_w(n) * problem.ic > array.rows * ar0
                or n * n * problem.oc > cols * ac0):
            break
        cycles = ceil_div(problem.out_h, n) * ceil_div(problem.out_w, n)
        if cycles <= best_cycles:
            best_n, best_cycles = n, cycles
    return best_n


def flex_loop(problem: LayerProblem, array: ArraySpec) -> tuple[int, int, int]:
    """(cycles, a, b) of the best flex window (group packing included)."""
    r, c = array.rows, array.usable_cols
    best = None
    for a in range(1, problem.out_h + 1):
        for b in range(1, problem.out_w + 1):
            rows = problem.pixels_h(a) * problem.pixels_w(b) * problem.ic
            cols = a * b * problem.oc
            tr, tc = ceil_div(rows, r), ceil_div(cols, c)
            gp = min(r // rows, c // cols, problem.groups) if tr == tc == 1 else 1
            sets = ceil_div(problem.groups, gp)
            cycles = ceil_div(problem.out_h, a) * ceil_div(problem.out_w, b) * tr * tc * sets
            key = _key(cycles, tr * tc * sets, a, b)
            if best is None or key < best:
                best = key
    assert best is not None  # (1, 1) always fits: one tap per row tile at worst
    return best[0], best[4], best[3]


def loop_strategies() -> dict[str, MappingStrategy]:
    """The four strategies with their window searches replaced by the plain loops (unregistered)."""
    def vw(problem: LayerProblem, arrays) -> list[tuple[int, int] | None]:
        found = [vwsdk_loop(problem, a) for a in arrays]
        return [None if best is None else best[1:] for best in found]

    def flex(problem: LayerProblem, arrays) -> list[tuple[int, int]]:
        return [flex_loop(problem, a)[1:] for a in arrays]

    def sdk(problem: LayerProblem, arrays, options) -> list[int]:
        return [sdk_loop(problem, a, options.search) for a in arrays]

    return {"im2col": Im2col(), "sdk": Sdk(search=sdk), "vwsdk": VwSdk(search=vw),
            "flex": Flex(search=flex)}
