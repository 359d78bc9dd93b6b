"""Objective-driven mapping: per layer, the window and tiling that minimise cycles, energy, energy-delay
product or arrays, evaluated through the cost model (torch-free).

The built-in strategies choose windows for fewest cycles. Fewest cycles is not fewest energy: a larger
window activates more rows and columns per activation, and a whole-channel tiling (VW-SDK) can convert
fewer partial sums than a cut-anywhere one (flex). :class:`ObjectiveSearch` scores every candidate plan
of one layer with the cost model and keeps the best:

* **candidates**: every window (a, b) of the reduced grid (:func:`~imcflow.mapping.search.Grid`) in the
  ``flat`` tiling (flex's: rows and columns cut anywhere; with grouped convs both unpacked and packed
  block-diagonally when one group fits a tile) and, where whole channels fit, the ``channel`` tiling
  (VW-SDK's). The flat (1, 1) window is im2col, the flat square windows inside im2col's budget are
  SDK's plans, flex's and VW-SDK's chosen windows are in the grid, so the result is never worse than any
  built-in strategy on the objective (a property test checks it through the ordinary cost path).
  The reduced grid loses nothing: at a fixed number of windows a larger window never has fewer tiles,
  rows, columns or accumulations, so every count and hence every objective is non-decreasing in it.
* **scores**: the counts of every candidate are the cost model's own aggregates (rows x column tiles,
  columns x row tiles, rows x columns, columns x (row tiles - 1), per window and tile set, exactly what
  :func:`imcflow.cost.counts.count_layer` sums tile by tile: a test compares them), held in a
  :class:`~imcflow.cost.counts.LayerCounts` of numpy arrays and priced by the registered cost
  components themselves; latency uses :func:`imcflow.cost.components.activation_time_s` tabulated over
  the possible column counts. Nothing here restates a cost formula.
* **tie-break**: objective, then cycles, tiles, a*b, b, a, then flat before channel.

The chosen plan's ``method`` is ``opt-<objective>`` and its ``fallback`` names the strategy whose tile
layout it uses (``flex`` or ``vwsdk``), so the cost model and the simulator build its tiles unchanged.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.mapping.base import LayerMapping, MappingOptions, build_mapping
from imcflow.mapping.flex import first_tile_weights
from imcflow.mapping.geometry import LayerProblem, ceil_div
from imcflow.mapping.layout import CHANNEL, FLAT
from imcflow.mapping.search import Grid

if TYPE_CHECKING:
    from imcflow.cost.model import CostSettings

OBJECTIVES: tuple[str, ...] = ("cycles", "energy", "edp", "arrays")
PREFIX = "opt-"


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    return objective


@dataclass(frozen=True)
class Candidates:
    """Every candidate plan of one layer on one array, flattened: window, tiling and counts per window.

    ``layout`` 0 = flat (flex), 1 = channel (VW-SDK). Counts are per *layer* (all windows, all sets).
    """

    a: np.ndarray
    b: np.ndarray
    layout: np.ndarray
    row_tiles: np.ndarray
    col_tiles: np.ndarray
    groups_per_tile: np.ndarray
    windows: np.ndarray
    tiles: np.ndarray  # arrays of the layer (all tile sets)
    rows: np.ndarray  # sum of active rows over every activation
    cols: np.ndarray
    cells: np.ndarray
    accumulations: np.ndarray
    # latency inputs: per window, n_full tiles of cols_full columns and n_last of cols_last columns
    cols_full: np.ndarray
    n_full: np.ndarray
    cols_last: np.ndarray
    n_last: np.ndarray

    @property
    def cycles(self) -> np.ndarray:
        return self.windows * self.tiles

    def __len__(self) -> int:
        return int(self.a.size)


def _flat(a, b, pixels, windows, ic, oc, g, r: int, c: int, pack: bool) -> dict[str, np.ndarray]:
    """Rows and columns cut every R and C'; ``pack``: several groups block-diagonal in one tile.
    Arguments are scalars or broadcastable arrays (grid windows, or one entry per layer)."""
    k = pixels * ic  # rows of one group's window matrix
    n = a * b * oc  # its weight columns
    tr, tc = ceil_div(k, r), ceil_div(n, c)
    if pack:
        single = (tr == 1) & (tc == 1)
        gp = np.where(single, np.minimum(np.minimum(r // k, c // n), g), 1)
    else:
        gp = np.ones_like(k)
    full, rest = np.divmod(g, gp)
    sets = full + (rest > 0)
    packed = gp > 1
    last = n - (tc - 1) * c  # unpacked: the last column tile of a group is partial
    zero = 0 * k
    return dict(a=a + zero, b=b + zero, layout=zero, row_tiles=tr, col_tiles=tc,
                groups_per_tile=gp, windows=windows + zero, tiles=tr * tc * sets,
                rows=np.where(packed, g * k, k * tc * g), cols=np.where(packed, g * n, n * tr * g),
                cells=np.where(packed, k * n * (full * gp * gp + rest * rest), k * n * g),
                accumulations=np.where(packed, 0, n * (tr - 1) * g),
                cols_full=np.where(packed, gp * n, np.minimum(n, c)),
                n_full=np.where(packed, full, tr * (tc - 1) * g),
                cols_last=np.where(packed, rest * n, last),
                n_last=np.where(packed, (rest > 0).astype(np.int64), tr * g))


def _channel(a, b, pixels, windows, ic, oc, g, r: int, c: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """VW-SDK's tiling: ICt whole input channels per row tile, OCt whole output channels per column
    tile (mapping.md section 5). Also returns where it is feasible (ICt > 0 and OCt > 0)."""
    ab = a * b
    ict, oct_ = r // pixels, c // ab
    ok = (ict > 0) & (oct_ > 0)
    tr = ceil_div(ic, np.maximum(ict, 1))
    tc = ceil_div(oc, np.maximum(oct_, 1))
    oct_c = np.minimum(oct_, oc)
    k, n = pixels * ic, ab * oc
    zero = 0 * k
    return dict(a=a + zero, b=b + zero, layout=zero + 1, row_tiles=tr, col_tiles=tc,
                groups_per_tile=zero + 1, windows=windows + zero, tiles=tr * tc * g,
                rows=k * tc * g, cols=n * tr * g, cells=k * n * g, accumulations=n * (tr - 1) * g,
                cols_full=ab * oct_c, n_full=tr * (tc - 1) * g,
                cols_last=ab * (oc - (tc - 1) * oct_c), n_last=tr * g), ok


def _per_layer(d: dict[str, np.ndarray]) -> Candidates:
    """Scale per-window sums to the whole layer (every window activates every tile once)."""
    w = d["windows"]
    return Candidates(**{**d, "rows": d["rows"] * w, "cols": d["cols"] * w, "cells": d["cells"] * w,
                         "accumulations": d["accumulations"] * w})


@lru_cache(maxsize=4096)
def candidates(problem: LayerProblem, array: ArraySpec) -> Candidates:
    """Every candidate plan of ``problem`` on ``array`` (see the module docstring).

    >>> cand = candidates(LayerProblem(4, 4, 3, 3, 1, 1), ArraySpec(16, 4))
    >>> int(cand.cycles.min())    # a 2x2 window: 4 windows of one tile (36 rows would not fit 16)
    4
    """
    grid = Grid.for_problem(problem)
    r, c = array.rows, array.usable_cols
    shape = (grid.a, grid.b, grid.pixels, grid.windows, problem.ic, problem.oc, problem.groups, r, c)
    parts = [_flat(*shape, pack=False)]
    if problem.groups > 1:
        parts.append(_flat(*shape, pack=True))
    channel, ok = _channel(*shape)
    parts.append({k: np.ravel(v)[ok.ravel()] for k, v in channel.items()})
    return _per_layer({k: np.concatenate([np.ravel(p[k]) for p in parts]) for k in parts[0]})


def plans_as_candidates(problems: Sequence[LayerProblem], plans: Sequence[LayerMapping],
                        array: ArraySpec) -> tuple[Candidates, np.ndarray]:
    """Existing plans (one per layer, any built-in or objective strategy) in the candidates' form, to
    score a whole network in one vectorised call; and a mask of the plans this reproduces exactly
    (their tiles are the flat or channel tiling at the plan's own tile counts). Others, e.g. the
    published SDK search's over-filled columns, are left to the ordinary cost path."""
    def col(values) -> np.ndarray:
        return np.array(values, dtype=np.int64)

    a, b = col([m.window.a for m in plans]), col([m.window.b for m in plans])
    shape = (a, b, col([m.window.pw_h * m.window.pw_w for m in plans]), col([m.windows for m in plans]),
             col([p.ic for p in problems]), col([p.oc for p in problems]),
             col([p.groups for p in problems]), array.rows, array.usable_cols)
    layouts = [m.layout.name for m in plans]
    flat, packed = _flat(*shape, pack=False), _flat(*shape, pack=True)
    channel, ok = _channel(*shape)
    gp = col([m.groups_per_tile for m in plans])
    use_channel = col([lay == "channel" for lay in layouts]).astype(bool)
    pick = {k: np.where(use_channel, channel[k], np.where(gp > 1, packed[k], flat[k])) for k in flat}
    exact = ((use_channel & ok) | col([lay == "flat" for lay in layouts]).astype(bool))
    exact &= ((pick["row_tiles"] == col([m.row_tiles for m in plans]))
              & (pick["col_tiles"] == col([m.col_tiles for m in plans]))
              & (pick["groups_per_tile"] == gp) & (pick["tiles"] == col([m.arrays for m in plans])))
    return _per_layer(pick), exact


@lru_cache(maxsize=1024)
def _step_times(preset: Any, array: ArraySpec, steps: int) -> np.ndarray:
    """``t[cols]``: the cost model's activation time of a tile with ``cols`` usable columns."""
    from imcflow.cost.components import activation_time_s
    from imcflow.cost.counts import TileShape

    return np.array([activation_time_s(preset, array, TileShape(1, cols, 1), steps)
                     for cols in range(array.usable_cols + 1)])


def score(cand: Candidates, array: ArraySpec, settings: CostSettings,
          breakdown: bool = False) -> dict[str, Any]:
    """Cycles, arrays, energy (J), latency (s) and EDP (J s) of every candidate, from the cost model's
    components and activation time; with ``breakdown``, also ``energy_breakdown``: component -> J."""
    from imcflow.cost.components import COMPONENTS
    from imcflow.cost.counts import LayerCounts, input_steps
    from imcflow.cost.model import check_mode

    preset = settings.preset
    bits = settings.bits
    steps = input_steps(bits, preset["dac.bits"])
    counts = LayerCounts(
        layer="", method="", input_bits=bits, output_bits=bits, input_steps=steps,
        slices=array.slices, windows=cand.windows, activations=cand.cycles,  # type: ignore[arg-type]
        arrays=cand.tiles, tiles=(), row_activations=cand.rows,  # type: ignore[arg-type]
        col_activations=cand.cols, cell_activations=cand.cells,  # type: ignore[arg-type]
        accumulations=cand.accumulations, macs=0, outputs=0)  # type: ignore[arg-type]
    parts = {name: component.energy_j(counts, preset) + np.zeros(len(cand))
             for name, component in COMPONENTS.items()}
    energy = np.zeros(len(cand))
    for value in parts.values():
        energy = energy + value
    t = _step_times(preset, array, steps)
    if check_mode(settings.mode) == "preloaded":
        slowest = np.where(cand.n_full > 0, np.maximum(t[cand.cols_full], t[cand.cols_last]),
                           t[cand.cols_last])
        latency = cand.windows * slowest
    else:
        latency = cand.windows * (cand.n_full * t[cand.cols_full] + cand.n_last * t[cand.cols_last])
    out: dict[str, Any] = {"cycles": cand.cycles, "arrays": cand.tiles, "energy": energy,
                           "latency": latency, "edp": energy * latency}
    if breakdown:
        out["energy_breakdown"] = parts
    return out


def best_index(cand: Candidates, values: np.ndarray) -> int:
    """The winner under the tie-break: objective, cycles, tiles, a*b, b, a, layout."""
    keys = (cand.layout, cand.a, cand.b, cand.a * cand.b, cand.tiles, cand.cycles, values)
    return int(np.lexsort(keys)[0])


class ObjectiveSearch:
    """A mapping strategy that minimises ``objective`` with the cost ``settings`` (preset, mode, input
    bits). Its name is ``opt-<objective>``; ``options.geometry`` applies, ``options.search`` does not
    (the search is always exhaustive over valid tilings). Equal (and hashing equal) when objective and
    settings are, so the mapping caches share its plans.

    >>> from imcflow.cost import CostSettings
    >>> from imcflow.hardware.preset import load_preset
    >>> s = ObjectiveSearch("cycles", CostSettings(load_preset("isaac")))
    >>> s.map(LayerProblem(26, 26, 3, 3, 128, 128), ArraySpec(512, 512), MappingOptions()).cycles
    676
    """

    def __init__(self, objective: str, settings: CostSettings):
        self.objective = check_objective(objective)
        self.settings = settings
        self.name = f"{PREFIX}{objective}"
        self.description = (f"window and tiling (flex or VW-SDK) with the least {objective} under the "
                            f"cost model")

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ObjectiveSearch)
                and (self.objective, self.settings) == (other.objective, other.settings))

    def __hash__(self) -> int:
        return hash((self.objective, self.settings))

    def __repr__(self) -> str:
        return f"ObjectiveSearch({self.objective!r}, preset={self.settings.preset.name!r})"

    def map(self, problem: LayerProblem, array: ArraySpec, options: MappingOptions,
            layer_name: str = "") -> LayerMapping:
        cand = candidates(problem, array)
        values = score(cand, array, self.settings)[self.objective]
        return plan_of(cand, best_index(cand, values), problem, array, self.name, layer_name)

    def map_many(self, problem: LayerProblem, arrays: Sequence[ArraySpec], options: MappingOptions,
                 layer_name: str = "") -> list[LayerMapping]:
        return [self.map(problem, a, options, layer_name) for a in arrays]


def plan_of(cand: Candidates, i: int, problem: LayerProblem, array: ArraySpec, method: str,
            layer_name: str = "") -> LayerMapping:
    """The :class:`LayerMapping` of candidate ``i``."""
    a, b = int(cand.a[i]), int(cand.b[i])
    tr, tc, gp = int(cand.row_tiles[i]), int(cand.col_tiles[i]), int(cand.groups_per_tile[i])
    if int(cand.layout[i]) == 1:
        pixels = problem.pixels_h(a) * problem.pixels_w(b)
        ict = min(array.rows // pixels, problem.ic)
        oct_ = min(array.usable_cols // (a * b), problem.oc)
        return build_mapping(method, problem, array, a=a, b=b, row_tiles=tr, col_tiles=tc, ict=ict,
                             oct=oct_, tile_weights=a * b * problem.taps * ict * oct_,
                             layout=CHANNEL, fallback="vwsdk", layer_name=layer_name)
    weights = (gp * a * b * problem.taps * problem.ic * problem.oc if gp > 1
               else first_tile_weights(problem, array, a, b))
    return build_mapping(method, problem, array, a=a, b=b, row_tiles=tr, col_tiles=tc,
                         ict=ceil_div(problem.ic, tr), oct=ceil_div(problem.oc, tc),
                         tile_weights=weights, groups_per_tile=gp, layout=FLAT, fallback="flex",
                         layer_name=layer_name)


def objective_strategy(name: str, settings: CostSettings) -> ObjectiveSearch:
    """``"opt-energy"`` (or ``"energy"``) -> the :class:`ObjectiveSearch` for that objective."""
    objective = name[len(PREFIX):] if name.startswith(PREFIX) else name
    return ObjectiveSearch(check_objective(objective), settings)


def is_objective_name(name: str) -> bool:
    return name.startswith(PREFIX) and name[len(PREFIX):] in OBJECTIVES
