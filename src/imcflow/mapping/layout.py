"""How the tiles of a mapping plan are laid out: what the simulator cuts and the cost model counts.

Every :class:`~imcflow.mapping.base.LayerMapping` carries its :class:`TileLayout` (``plan.layout``), set
by the strategy that made it, so the simulator (:mod:`imcflow.sim.tiles`) and the cost model
(:mod:`imcflow.cost.counts`) ask the plan and never look a strategy up by name. A layout answers two
questions about one *set matrix* (the ``K x N`` matrix of one tile set of a window, mapping.md
section 6: rows ``c*PWh*PWw + pixel`` channel-major, columns ``(wy*b + wx)*OC + o``):

* :meth:`TileLayout.cut`: which rows and which columns of that matrix each physical tile holds;
* :meth:`TileLayout.tile_shapes`: how many word lines and usable columns each tile occupies (merged by
  shape), from the layer's shape alone.

Built-in layouts:

* ``flat`` (im2col, SDK, flex, and VW-SDK's im2col fallback): rows cut every R, columns every C', at
  arbitrary positions; all tiles full except the last along each axis. SDK spreads its window the same
  way over its frozen im2col budget; flex with ``groups_per_tile`` = gp > 1 puts gp groups
  block-diagonally in one tile.
* ``channel`` (VW-SDK): ICt whole input channels x PW pixels per row tile, OCt whole output channels x
  a*b offsets per column tile, offset-major inside the tile (mapping.md sections 5 and 6).

A new layout is a class with ``name``, ``cut`` and ``tile_shapes``; a strategy puts an instance on
the plans it builds (``build_mapping(..., layout=...)``). Torch-free: numpy only.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from imcflow.errors import ImcflowError
from imcflow.hardware.array import ArraySpec
from imcflow.mapping.geometry import LayerProblem, ceil_div

if TYPE_CHECKING:
    from imcflow.mapping.base import LayerMapping

#: Row slices ``[(r0, r1)]`` and column index arrays of one set matrix, one per tile along each axis.
Cut = tuple[list[tuple[int, int]], list[np.ndarray]]


@dataclass(frozen=True)
class TileShape:
    """``count`` tiles of the layer that occupy ``rows`` word lines and ``cols`` usable columns;
    ``row_index`` is the row-tile position (tiles at row_index > 0 accumulate into earlier ones)."""

    rows: int
    cols: int
    count: int
    row_index: int = 0


@dataclass(frozen=True)
class TileGeometry:
    """Where every row and column of one set matrix comes from (weights not included)."""

    problem: LayerProblem
    a: int
    b: int
    pos_h: tuple[int, ...]  # input offsets of the PW rows relative to the window origin
    pos_w: tuple[int, ...]
    groups_per_set: int
    sets: int

    @property
    def pixels(self) -> int:
        return len(self.pos_h) * len(self.pos_w)

    @property
    def rows_per_group(self) -> int:
        return self.problem.ic * self.pixels

    @property
    def cols_per_group(self) -> int:
        return self.a * self.b * self.problem.oc

    @property
    def set_rows(self) -> int:
        return self.groups_per_set * self.rows_per_group

    @property
    def set_cols(self) -> int:
        return self.groups_per_set * self.cols_per_group

    def groups_in_set(self, s: int) -> int:
        """Real groups in set ``s`` (the last set of a packed grouped conv may be partial)."""
        return min(self.groups_per_set, self.problem.groups - s * self.groups_per_set)


@runtime_checkable
class TileLayout(Protocol):
    """How a plan's tiles cut its set matrix (see the module docstring)."""

    name: str

    def cut(self, geo: TileGeometry, plan: LayerMapping, array: ArraySpec) -> Cut: ...

    def tile_shapes(self, problem: LayerProblem, plan: LayerMapping,
                    array: ArraySpec) -> list[TileShape]: ...


def split_axis(total: int, capacity: int, pieces: int, what: str) -> list[int]:
    """Cut ``total`` consecutive rows (or columns) into ``pieces`` tiles of ``capacity``, the last one
    partial.

    >>> split_axis(27, 10, 3, "rows")
    [10, 10, 7]

    A plan that over-fills its tiles (the published SDK search tests physical columns C with
    multi-bit weights, mapping.md section 4) spreads ``total`` evenly over the pieces it reports.
    """
    cap = capacity if total <= capacity * pieces else ceil_div(total, pieces)
    sizes = [min(cap, total - i * cap) for i in range(pieces)]
    if any(s <= 0 for s in sizes) or sum(sizes) != total:
        raise ImcflowError(f"mapping plan inconsistent: {total} {what} do not fill {pieces} tiles of "
                           f"{capacity}")
    return sizes


def _grid(rows: list[int], cols: list[int], sets: int) -> list[TileShape]:
    # Column tiles of equal width are merged here (at most two widths), so the list grows with the
    # row tiles only: a 1 x 1 array would otherwise list rows x cols tiles (millions for ResNet-50).
    widths = Counter(cols)
    return [TileShape(r, c, sets * n, i) for i, r in enumerate(rows) for c, n in widths.items()]


@dataclass(frozen=True)
class FlatLayout:
    """Rows every R, columns every C', at arbitrary positions (im2col, SDK, flex).

    For SDK this cuts the virtual (R*AR0) x (C'*AC0) array into exactly AR0 x AC0 physical arrays: the
    plan's window satisfies PW*IC <= R*AR0 and n*n*OC <= C'*AC0, and PW*IC >= Kh*Kw*IC, n*n*OC >= OC.
    """

    name = "flat"

    def cut(self, geo: TileGeometry, plan: LayerMapping, array: ArraySpec) -> Cut:
        k, n = geo.set_rows, geo.set_cols
        rows = [(r, min(r + array.rows, k)) for r in range(0, k, array.rows)]
        cols = [np.arange(c, min(c + array.usable_cols, n)) for c in range(0, n, array.usable_cols)]
        return rows, cols

    def tile_shapes(self, problem: LayerProblem, plan: LayerMapping, array: ArraySpec) -> list[TileShape]:
        w = plan.window
        rows = w.pw_h * w.pw_w * problem.ic
        cols = w.a * w.b * problem.oc
        gp = plan.groups_per_tile
        if gp > 1:
            # Block-diagonal group packing (flex): one tile per set of gp groups, the last set partial.
            full, rest = divmod(problem.groups, gp)
            shapes = [TileShape(gp * rows, gp * cols, full)] if full else []
            if rest:
                shapes.append(TileShape(rest * rows, rest * cols, 1))
            return shapes
        return _grid(split_axis(rows, array.rows, plan.row_tiles, "rows"),
                     split_axis(cols, array.usable_cols, plan.col_tiles, "columns"), problem.groups)


@dataclass(frozen=True)
class ChannelLayout:
    """Whole channels per tile (VW-SDK): ICt input channels x PW pixels per row tile, OCt output
    channels x a*b offsets per column tile, offset-major inside the tile (``(wy*b + wx)*OCt + o``)."""

    name = "channel"

    def cut(self, geo: TileGeometry, plan: LayerMapping, array: ArraySpec) -> Cut:
        p, ic, oc, ab = geo.pixels, geo.problem.ic, geo.problem.oc, geo.a * geo.b
        ict, oct_ = plan.window.ict, plan.window.oct
        rows = [(c * p, min(c + ict, ic) * p) for c in range(0, ic, ict)]
        cols = []
        for o0 in range(0, oc, oct_):
            o = np.arange(o0, min(o0 + oct_, oc))
            cols.append((np.arange(ab)[:, None] * oc + o[None, :]).ravel())
        return rows, cols

    def tile_shapes(self, problem: LayerProblem, plan: LayerMapping, array: ArraySpec) -> list[TileShape]:
        w = plan.window
        pixels = w.pw_h * w.pw_w
        rows = [pixels * min(w.ict, problem.ic - i * w.ict) for i in range(plan.row_tiles)]
        cols = [w.a * w.b * min(w.oct, problem.oc - j * w.oct) for j in range(plan.col_tiles)]
        if min(rows) <= 0 or min(cols) <= 0 or max(rows) > array.rows or max(cols) > array.usable_cols:
            raise ImcflowError(f"mapping plan inconsistent: channel-layout tiles {rows} x {cols} do not fit "
                               f"{array.rows} x {array.usable_cols}")
        return _grid(rows, cols, problem.groups)


FLAT = FlatLayout()
CHANNEL = ChannelLayout()
