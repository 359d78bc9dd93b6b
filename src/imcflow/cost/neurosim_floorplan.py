"""DNN+NeuroSim's chip floor plan: tiles, processing elements (PEs) and weight duplication per layer.

NeuroSim (V1.3/V1.4, ``Chip.cpp``: ``ChipDesignInitialize``, ``ChipFloorPlan``, ``TileDesignCM/NM``,
``PEDesign``, ``SubArrayDup``, ``OverallEachLayer``) sizes one chip for a whole network before it
simulates anything. This module restates that algorithm (in our own words and code) so imcflow can
(1) refuse, before writing any file, a network NeuroSim cannot floor-plan, and (2) reproduce the
tile counts and speed-ups its cost figures depend on. It reads only NetWork.csv rows and is torch-free.

The rule, for weight ``S = ceil(weight_bits / cell_bits)`` columns per weight and an ``A x A``
subarray (``numRowSubArray``):

* **Kernel class.** ``k_pe`` = the kernel area ``Kh*Kw`` (other than 1) that the most layers share
  ("novel mapping" puts each kernel position of such a layer in its own PE, so a tile holds
  ``k_pe`` PEs). A layer is *novel-mapped* (NM) when its kernel area is ``k_pe`` and its
  ``IC*Kh*Kw >= A``; every other layer (small convolutions, 1x1 and FC) is *conventionally mapped*
  (CM). ``minCube`` of a layer = ``2^ceil(log2(OC*S))``; the largest over NM layers is the biggest
  NM PE, over CM layers the biggest CM tile.
* **Hierarchy check** (the reason for ``ERROR: SubArray Size is too large, which break the chip
  hierarchy``). NeuroSim's tile holds at least 2x2 PEs of at least 2x2 subarrays: with novel mapping
  on (V1.3/V1.4 default) it needs an NM layer and ``max minCube(NM) >= 2A``; with it off, it needs
  ``max minCube(all) >= 4A``. Otherwise it prints the error, leaves the tile sizes at 0 and divides by
  zero / reads past its arrays later (a floating-point exception or segmentation fault). A one-layer
  network of a small first layer (``34,34,3,3,3,128,0,1``: ``IC*Kh*Kw = 27 < 128``, so no NM layer)
  is the typical case: :func:`check_floorplan` refuses it.
* **Sizes.** NM PE size = the power of two from ``max(maxNM, 2A)`` down to ``> 2A`` whose NM tiles
  are best utilised; CM tile size likewise from ``max(maxCM, 4A)`` down to ``> 4A``; CM PE size =
  tile/2, or a smaller power of two (``> 2A``) that improves the (shared) CM utilisation.
* **Duplication.** A CM layer whose matrix is smaller than a tile (rows or columns) is copied into the
  free PEs of its tile, and into the free subarrays of its PE; an NM layer into the free subarrays of
  its PEs. Pipelined chips add copies (``speedUpDegree``, capped at max/min input size) so that early,
  large layers keep pace: ``speedUp_i = ceil((H_i / ceil(H_0 / degree))^2)`` tiles' worth.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imcflow.errors import ConfigError


@dataclass(frozen=True)
class FloorplanSettings:
    """The NeuroSim parameters the floor plan depends on (V1.4 ``Param.cpp`` defaults)."""

    sub_array: int = 128           # numRowSubArray = numColSubArray (main.cpp argv[4] in V1.4)
    weight_bits: int = 8           # synapseBit (argv[2])
    cell_bits: int = 1             # cellBit (Param.cpp; forced to 1 for SRAM)
    novel_mapping: bool = True     # novelMapping
    pipeline: bool = True          # pipeline
    speed_up_degree: int = 8       # speedUpDegree

    @property
    def columns_per_weight(self) -> int:
        return math.ceil(self.weight_bits / self.cell_bits)


@dataclass(frozen=True)
class LayerPlacement:
    """One layer on NeuroSim's chip: mapping kind, tiles (row x column) and speed-up (copies)."""

    index: int
    novel: bool
    tile_rows: int
    tile_cols: int
    speed_up_rows: int
    speed_up_cols: int
    utilization: float

    @property
    def tiles(self) -> int:
        return self.tile_rows * self.tile_cols

    @property
    def speed_up(self) -> int:
        return self.speed_up_rows * self.speed_up_cols

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.index + 1, "novel_mapping": self.novel, "tiles": self.tiles,
                "tile_rows": self.tile_rows, "tile_cols": self.tile_cols, "speed_up": self.speed_up,
                "utilization": self.utilization}


@dataclass(frozen=True)
class Floorplan:
    """The whole chip: sizes chosen and every layer's placement."""

    settings: FloorplanSettings
    pe_kernel_area: int
    nm_pe_size: int
    cm_tile_size: int
    cm_pe_size: int
    layers: tuple[LayerPlacement, ...]

    @property
    def total_tiles(self) -> int:
        return sum(p.tiles for p in self.layers)

    @property
    def tile_grid(self) -> tuple[int, int]:
        """Tiles are laid out on a near-square grid: ``ceil(sqrt(n))`` rows."""
        rows = math.ceil(math.sqrt(self.total_tiles))
        return rows, math.ceil(self.total_tiles / rows)

    def to_dict(self) -> dict[str, Any]:
        return {"pe_kernel_area": self.pe_kernel_area, "nm_pe_size": self.nm_pe_size,
                "cm_tile_size": self.cm_tile_size, "cm_pe_size": self.cm_pe_size,
                "layers": [p.to_dict() for p in self.layers]}


Row = Sequence[int]  # IFM_H, IFM_W, IC, Kh, Kw, OC, pool_flag, stride


def _pow2_ceil(x: float) -> int:
    return 1 << max(0, math.ceil(math.log2(x)))


def _pe_kernel_area(rows: Sequence[Row]) -> int:
    # The kernel area shared by most layers; a tie goes to the first layer that reaches the count
    # (NeuroSim counts a layer once for itself plus once per matching layer, ignoring 1x1 kernels).
    most, area = 0, 0
    for r in rows:
        k = r[3] * r[4]
        count = 1
        for other in rows:
            if k == other[3] * other[4] and k != 1:
                count += 1
            if most < count:
                most, area = count, k
    return area


def _halvings(start: int, floor: int) -> list[int]:
    sizes, s = [], start
    while s > floor:
        sizes.append(s)
        s //= 2
    return sizes or [start]


def hierarchy_problem(rows: Sequence[Row], settings: FloorplanSettings) -> str | None:
    """Why NeuroSim cannot floor-plan ``rows`` with ``settings`` (None when it can)."""
    a, s = settings.sub_array, settings.columns_per_weight
    k_pe = _pe_kernel_area(rows)
    novel = [settings.novel_mapping and r[3] * r[4] == k_pe and r[2] * r[3] * r[4] >= a for r in rows]
    cubes = [_pow2_ceil(r[5] * s) for r in rows]
    if settings.novel_mapping:
        nm = [c for c, n in zip(cubes, novel, strict=False) if n]
        if not nm:
            return (f"no layer is novel-mapped (kernel area {k_pe} and IC*Kh*Kw >= {a}), and NeuroSim's "
                    f"chip hierarchy needs one whose PE, 2^ceil(log2(OC*{s})) columns, is at least "
                    f"2 x {a}")
        if max(nm) < 2 * a:
            return (f"the largest novel-mapped layer needs a PE of {max(nm)} columns "
                    f"(2^ceil(log2(OC*{s}))), below the 2 x {a} = {2 * a} NeuroSim's hierarchy needs")
        return None
    if max(cubes) < 4 * a:
        return (f"the widest layer needs a tile of {max(cubes)} columns (2^ceil(log2(OC*{s}))), "
                f"below the 4 x {a} = {4 * a} NeuroSim's hierarchy needs")
    return None


def check_floorplan(rows: Sequence[Row], settings: FloorplanSettings | None = None,
                    where: str = "network") -> None:
    """Raise :class:`ConfigError` when NeuroSim would abort on this network (see the module docstring).

    >>> check_floorplan([(34, 34, 3, 3, 3, 128, 0, 1)])
    Traceback (most recent call last):
    ...
    imcflow.errors.ConfigError: network: NeuroSim cannot floor-plan it with a 128x128 subarray: no layer ...
    """
    settings = settings or FloorplanSettings()
    problem = hierarchy_problem(rows, settings)
    if problem is not None:
        raise ConfigError(f"{where}: NeuroSim cannot floor-plan it with a {settings.sub_array}x"
                          f"{settings.sub_array} subarray: {problem}. NeuroSim would print 'SubArray "
                          f"Size is too large' and then crash; use a smaller --sub-array or trace the "
                          f"layer within its network (--traces)")


def _dup(rows_needed: int, cols_needed: int, unit: int, block: int) -> tuple[int, int]:
    """How many copies of a ``rows_needed x cols_needed`` matrix of ``unit`` blocks fit ``block``."""
    per_r = math.ceil(rows_needed / unit)
    per_c = math.ceil(cols_needed / unit)
    n = math.ceil(block / unit)
    return max(1, n // per_r), max(1, n // per_c)


def plan_floor(rows: Sequence[Row], settings: FloorplanSettings | None = None) -> Floorplan:
    """NeuroSim's floor plan of ``rows`` (NetWork.csv rows).

    >>> vgg8 = [(32,32,3,3,3,128,0,1), (32,32,128,3,3,128,1,1), (16,16,128,3,3,256,0,1),
    ...         (16,16,256,3,3,256,1,1), (8,8,256,3,3,512,0,1), (8,8,512,3,3,512,1,1),
    ...         (1,1,8192,1,1,1024,0,1), (1,1,1024,1,1,10,0,1)]
    >>> fp = plan_floor(vgg8)
    >>> [p.tiles for p in fp.layers], [p.speed_up for p in fp.layers]    # V1.4's log for VGG-8
    ([2, 8, 4, 8, 8, 8, 64, 1], [16, 16, 4, 4, 2, 1, 1, 8])
    """
    settings = settings or FloorplanSettings()
    check_floorplan(rows, settings)
    a, s = settings.sub_array, settings.columns_per_weight
    k_pe = _pe_kernel_area(rows)
    novel = [settings.novel_mapping and r[3] * r[4] == k_pe and r[2] * r[3] * r[4] >= a for r in rows]
    cubes = [_pow2_ceil(r[5] * s) for r in rows]
    max_nm = max([c for c, n in zip(cubes, novel, strict=False) if n], default=0)
    max_cm = max([c for c, n in zip(cubes, novel, strict=False) if not n], default=0)

    speed = [1] * len(rows)
    if settings.pipeline:
        h0 = rows[0][0]
        hmin = min([h0] + [r[0] for r in rows if r[3] != 1])
        degree = min(settings.speed_up_degree, h0 // hmin)
        bound = math.ceil(h0 / degree)
        speed = [math.ceil((r[0] / bound) ** 2) for r in rows]

    def nm_tiles(pe: int) -> tuple[float, float]:
        n = sum(math.ceil(r[2] / pe) * math.ceil(r[5] * s / pe)
                for r, m in zip(rows, novel, strict=True) if m)
        w = sum(r[2] * r[3] * r[4] * r[5] * s for r, m in zip(rows, novel, strict=False) if m)
        return n, w / (n * pe * pe * k_pe) if n else 0.0

    def cm_tiles(tile: int) -> tuple[float, float]:
        n = sum(math.ceil(r[2] * r[3] * r[4] / tile) * math.ceil(r[5] * s / tile)
                for r, m in zip(rows, novel, strict=False) if not m)
        w = sum(r[2] * r[3] * r[4] * r[5] * s for r, m in zip(rows, novel, strict=False) if not m)
        return n, w / (n * tile * tile) if n else 0.0

    nm_pe = 0
    if settings.novel_mapping:
        best = 0.0
        nm_pe = max(max_nm, 2 * a)
        for size in _halvings(max(max_nm, 2 * a), 2 * a):
            util = nm_tiles(size)[1]
            if util > best:
                best, nm_pe = util, size
    best_cm = 0.0
    cm_tile = max(max_cm, 4 * a)
    cm_count = cm_tiles(cm_tile)[0]
    for size in _halvings(max(max_cm, 4 * a), 4 * a):
        n, util = cm_tiles(size)
        if util > best_cm:
            best_cm, cm_tile, cm_count = util, size, n
    cm_pe = cm_tile // 2
    pe_dups: dict[int, list[tuple[int, int]]] = {}
    for pe in _halvings(cm_tile // 2, 2 * a):
        dups, used = [], 0
        for r, m in zip(rows, novel, strict=False):
            d = (1, 1)
            if not m and (r[2] * r[3] * r[4] <= cm_tile or r[5] * s <= cm_tile):
                d = _dup(r[2] * r[3] * r[4], r[5] * s, pe, cm_tile)
            dups.append(d)
            if not m:
                used += d[0] * d[1] * r[2] * r[3] * r[4] * r[5] * s
        pe_dups[pe] = dups
        util = used / (cm_count * cm_tile * cm_tile) if cm_count else 0.0
        if util > best_cm:
            best_cm, cm_pe = util, pe
    pe_dup = pe_dups.get(cm_pe) or [(1, 1)] * len(rows)
    pe_dup = [d if not m else (1, 1) for d, m in zip(pe_dup, novel, strict=False)]

    placements = []
    for i, (r, m) in enumerate(zip(rows, novel, strict=False)):
        r_rows = r[2] if m else r[2] * r[3] * r[4]
        block = nm_pe if m else cm_pe
        sub = _dup(r_rows, r[5] * s, a, block) if (r_rows <= block or r[5] * s <= block) else (1, 1)
        copies_in_place = pe_dup[i][0] * pe_dup[i][1] * sub[0] * sub[1]
        extra = math.ceil(speed[i] / copies_in_place) if settings.pipeline else 1
        size = nm_pe if m else cm_tile
        t_rows = math.ceil(r_rows / size) * extra
        t_cols = math.ceil(r[5] * s / size)
        copies = max(speed[i], copies_in_place) if settings.pipeline else copies_in_place
        util = copies * r[2] * r[3] * r[4] * r[5] * s / (t_rows * t_cols * size * size * (k_pe if m else 1))
        placements.append(LayerPlacement(i, m, t_rows, t_cols, pe_dup[i][0] * sub[0] * extra,
                                         pe_dup[i][1] * sub[1], util))
    return Floorplan(settings, k_pe, nm_pe, cm_tile, cm_pe, tuple(placements))
