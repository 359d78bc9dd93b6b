"""VW-SDK: variable (rectangular) windows over whole tiles of ICt input and OCt output channels
(mapping.md section 5), with the optimal search and the published code's search.

Because channels are tiled whole, the (1, 1) window is not im2col; the reported mapping is the better of
the best window and im2col (ties go to im2col, as the published tables print "im2col").
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from imcflow.hardware.array import ArraySpec
from imcflow.mapping.base import LayerMapping, MappingOptions, build_mapping
from imcflow.mapping.geometry import LayerProblem, ceil_div
from imcflow.mapping.im2col import im2col_tiles
from imcflow.mapping.layout import CHANNEL, FLAT
from imcflow.mapping.search import Grid, search_windows

WindowSearch = Callable[[LayerProblem, Sequence[ArraySpec]], list["tuple[int, int] | None"]]


def vw_tiles(grid: Grid, problem: LayerProblem, rows, cols):
    """Tr, Tc, cycles and feasibility of every candidate; ``rows``/``cols`` (R, C') are scalars or
    (n, 1, 1) arrays to evaluate n arrays at once. Infeasible where ICt or OCt is 0."""
    ict = rows // grid.pixels
    oct_ = cols // (grid.a * grid.b)
    feasible = (ict > 0) & (oct_ > 0)
    tr = ceil_div(problem.ic, np.maximum(ict, 1))
    tc = ceil_div(problem.oc, np.maximum(oct_, 1))
    return tr, tc, grid.windows * tr * tc, feasible


def optimal_windows(problem: LayerProblem, arrays: Sequence[ArraySpec]) -> list[tuple[int, int] | None]:
    """The exhaustive search's (a, b) on each array, or None where no window fits (Kh*Kw > R)."""
    def evaluate(grid: Grid, rows: np.ndarray, cols: np.ndarray):
        tr, tc, cycles, feasible = vw_tiles(grid, problem, rows, cols)
        return cycles, tr * tc, feasible

    # A whole input channel of the window must fit the rows and one output offset per column:
    # a*b <= PWh*PWw <= R and a*b <= C', whatever the map size.
    cap = max(min(a.rows, a.usable_cols) for a in arrays)
    return search_windows(problem, arrays, evaluate, lambda best: cap, "VW-SDK window search")


def paper_windows(problem: LayerProblem, arrays: Sequence[ArraySpec]) -> list[tuple[int, int] | None]:
    """The published code's search on each array, reproduced bit for bit (mapping.md section 5).

    Range a in [1, Wo-1] and b in [1, Ho-1] (in paper geometry W-Kw and H-Kh: a is bounded by the width
    and b by the height); b is the outer loop; selection by the FIFO queue rule, not a minimum.

    Only feasible windows take part in the queue, and they form a staircase: the PW pixel count and
    a*b grow with a, so for each b the feasible a are a prefix 1..n(b). The cycles of just those
    candidates are evaluated at once; the queue is then replayed event by event (:func:`_fifo_head`)
    instead of candidate by candidate.
    """
    # Only windows with a, b <= min(R, C') can be feasible (see optimal_windows); the rest are skipped
    # by the loop anyway, so the ranges stop there instead of growing with the map. The feasible
    # staircase itself holds at most sum_b C'/b candidates, so the work stays bounded.
    fit = max(min(array.rows, array.usable_cols) for array in arrays)
    a_range = np.arange(1, min(problem.out_w, fit + 1), dtype=np.int64)
    b_range = np.arange(1, min(problem.out_h, fit + 1), dtype=np.int64)
    if a_range.size == 0 or b_range.size == 0:
        return [None] * len(arrays)
    ph, pw = problem.pixels_h_many(a_range), problem.pixels_w_many(b_range)
    wh, ww = ceil_div(problem.out_h, a_range), ceil_div(problem.out_w, b_range)
    out: list[tuple[int, int] | None] = []
    for array in arrays:
        r, c = array.rows, array.usable_cols
        # n(b): a fits while ph(a)*pw(b) <= R (ICt >= 1) and a*b <= C' (OCt >= 1).
        counts = np.minimum(np.searchsorted(ph, r // pw, side="right"), c // b_range)
        counts = np.minimum(counts, a_range.size)
        total = int(counts.sum())
        if total == 0:
            out.append(None)
            continue
        starts = np.cumsum(counts) - counts
        bi = np.repeat(np.arange(b_range.size), counts)
        ai = np.arange(total) - np.repeat(starts, counts)
        tr = ceil_div(problem.ic, r // (ph[ai] * pw[bi]))
        tc = ceil_div(problem.oc, c // (a_range[ai] * b_range[bi]))
        cycles = wh[ai] * ww[bi] * tr * tc
        head = _fifo_head(cycles, starts, counts)
        out.append(None if head is None else (int(a_range[ai[head]]), int(b_range[bi[head]])))
    return out


def _fifo_head(cycles: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> int | None:
    """Index (into the flat candidate list) of the published FIFO queue's head after every candidate;
    row j (one b) holds ``counts[j]`` candidates from ``starts[j]``, in the loop order of a.

    The rule: for each feasible candidate c in loop order, (1) append c if it starts its row (a = 1);
    (2) then, if cycles(head) > cycles(c), pop the head and append c. A row none of whose candidates is
    below the head only appends its first candidate, so rows are skipped in bulk up to the next row
    with a candidate below the head; inside that row only the candidates below the head are visited.
    """
    keep = counts > 0
    st, n = starts[keep], counts[keep]
    if st.size == 0:
        return None
    # Minimum of each row: reduceat over [start, end) pairs (a sentinel closes the last row).
    bounds = np.stack([st, st + n], axis=1).ravel()
    row_min = np.minimum.reduceat(np.append(cycles, 0), bounds)[::2]
    cl = cycles.tolist()
    st_l, end_l = st.tolist(), (st + n).tolist()
    queue: deque[int] = deque()  # flat indices of the queued candidates
    j, rows = 0, len(st_l)
    while j < rows:
        if queue:
            later = np.flatnonzero(row_min[j:] < cl[queue[0]])
            if later.size == 0:
                break  # no later row changes the head
            k = j + int(later[0])
            queue.extend(st_l[j:k])  # rows in between only append their first candidate
            j = k
        s, end = st_l[j], end_l[j]
        queue.append(s)
        if cl[queue[0]] > cl[s]:
            queue.popleft()
            queue.append(s)
        pos = s + 1
        while pos < end:
            below = np.flatnonzero(cycles[pos:end] < cl[queue[0]])
            if below.size == 0:
                break
            i = pos + int(below[0])
            queue.popleft()
            queue.append(i)
            pos = i + 1
        j += 1
    return queue[0]


def paper_window(problem: LayerProblem, array: ArraySpec) -> tuple[int, int] | None:
    """:func:`paper_windows` for one array."""
    return paper_windows(problem, [array])[0]


def vwc_code_window(problem: LayerProblem, array: ArraySpec) -> tuple[int, int, int] | None:
    """The window search of the VWC-SDK authors' pruning scripts: ``(a, b, ICt)`` or None.

    It differs from :func:`paper_window` (the VW-SDK code) in three ways, all kept here because the
    published VWC-SDK rounds depend on them: ``a`` runs over [1, Ho] and ``b`` over [1, Wo] (the full
    output extent, not Wo-1); a layer with exactly 3 input channels gets ICt = min(3,
    floor(R / PWh * PWw)) (the scripts' operator order); and there is no im2col fallback, so ICt is
    the chosen window's even where im2col would be faster. The loop order (``b`` outer, ``a`` inner),
    the cycle count (windows x ceil(IC/ICt) x ceil(OC/OCt)) and the FIFO pick are :func:`paper_window`'s;
    candidates with ICt = 0 or OCt = 0 are skipped. ``problem`` should be in paper geometry (the
    scripts call it with each layer's input size, stride 1, no padding).

    Worked example (CNN-8's conv3 on 18x18 inputs, 256x512 array, the authors' table: PW 6x6, ICt 7):

    >>> from imcflow.layers import ConvLayer
    >>> p = LayerProblem.from_layer(ConvLayer("c3", 32, 32, 3, input_size=18), "paper")
    >>> a, b, ict = vwc_code_window(p, ArraySpec(256, 512))
    >>> p.pixels_h(a) * p.pixels_w(b), ict
    (36, 7)
    """
    queue: list[tuple[int, int, int, int]] = []  # (cycles, a, b, ICt), oldest first
    for b in range(1, problem.out_w + 1):
        for a in range(1, problem.out_h + 1):
            ph, pw = problem.pixels_h(a), problem.pixels_w(b)
            ict = min(3, int(array.rows / ph * pw)) if problem.ic == 3 else array.rows // (ph * pw)
            oct_ = array.usable_cols // (a * b)
            if ict == 0 or oct_ == 0:
                continue
            cycles = (ceil_div(problem.out_h, a) * ceil_div(problem.out_w, b)
                      * ceil_div(problem.ic, ict) * ceil_div(problem.oc, oct_))
            cand = (int(cycles), a, b, ict)
            if a == 1:
                queue.append(cand)
            if queue and queue[0][0] > cand[0]:
                queue.pop(0)
                queue.append(cand)
    return (queue[0][1], queue[0][2], queue[0][3]) if queue else None


def paper_window_label(problem: LayerProblem, array: ArraySpec, a: int, b: int) -> str:
    """The window as the published tables print it: ``PWh x PWw x ICt x OCt`` with ICt raw except
    capped at 3 when IC = 3, and OCt raw (floor(C'/(a*b)), not clamped to OC)."""
    ph, pw = problem.pixels_h(a), problem.pixels_w(b)
    ict = array.rows // (ph * pw)
    if problem.ic == 3:
        ict = min(ict, 3)
    return f"{ph}x{pw}x{ict}x{array.usable_cols // (a * b)}"


class VwSdk:
    name = "vwsdk"
    title = "VW-SDK"  # how reports print it
    description = "variable rectangular windows over whole ICt/OCt channel tiles; min with im2col"
    layout = CHANNEL

    def __init__(self, search: WindowSearch = optimal_windows):
        self.search = search  # the optimal search; replaceable (the benchmark plugs in the plain loop)

    def map(self, problem: LayerProblem, array: ArraySpec, options: MappingOptions,
            layer_name: str = "") -> LayerMapping:
        return self.map_many(problem, (array,), options, layer_name)[0]

    def map_many(self, problem: LayerProblem, arrays: Sequence[ArraySpec], options: MappingOptions,
                 layer_name: str = "") -> list[LayerMapping]:
        if options.search == "paper":
            windows = paper_windows(problem, arrays)
        else:
            windows = self.search(problem, arrays)
        return [self._assemble(problem, array, ab, options, layer_name)
                for array, ab in zip(arrays, windows, strict=True)]

    def _assemble(self, problem: LayerProblem, array: ArraySpec, ab: tuple[int, int] | None,
                  options: MappingOptions, layer_name: str) -> LayerMapping:
        ar, ac = im2col_tiles(problem, array)
        im2col_cycles = problem.out_h * problem.out_w * ar * ac * problem.groups
        if ab is not None:
            a, b = ab
            ph, pw = problem.pixels_h(a), problem.pixels_w(b)
            ict_raw, oct_raw = array.rows // (ph * pw), array.usable_cols // (a * b)
            tr, tc = ceil_div(problem.ic, ict_raw), ceil_div(problem.oc, oct_raw)
            cycles = ceil_div(problem.out_h, a) * ceil_div(problem.out_w, b) * tr * tc * problem.groups
            if cycles < im2col_cycles:
                ict, oct_ = min(ict_raw, problem.ic), min(oct_raw, problem.oc)
                label = (paper_window_label(problem, array, a, b) if options.search == "paper"
                         else f"{ph}x{pw}x{ict}x{oct_}")
                return build_mapping(self.name, problem, array, layout=self.layout, a=a, b=b,
                                     row_tiles=tr, col_tiles=tc, ict=ict, oct=oct_,
                                     tile_weights=a * b * problem.taps * ict * oct_,
                                     label=label, layer_name=layer_name)
        # No window beats im2col: report im2col's plan, tiles laid out the im2col (flat) way.
        tile_weights = min(array.rows, problem.taps * problem.ic) * min(array.usable_cols, problem.oc)
        return build_mapping(self.name, problem, array, layout=FLAT,
                             a=1, b=1, row_tiles=ar, col_tiles=ac,
                             ict=ceil_div(problem.ic, ar), oct=ceil_div(problem.oc, ac),
                             tile_weights=tile_weights, label="im2col", fallback="im2col",
                             layer_name=layer_name)

