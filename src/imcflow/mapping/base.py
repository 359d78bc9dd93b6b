"""What every mapping strategy returns, the options they take, and the strategy registry.

A strategy maps one :class:`~imcflow.mapping.geometry.LayerProblem` onto one array and returns a
:class:`LayerMapping`: the chosen window, its tiles and counts. That record is the plan the simulator
builds tiles from and the cost model counts events from; nobody recomputes it another way.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.mapping.geometry import LayerProblem, ceil_div
from imcflow.mapping.layout import TileLayout
from imcflow.registry import Registry

Geometry = Literal["real", "paper"]
Search = Literal["optimal", "paper"]
GEOMETRIES: tuple[str, ...] = get_args(Geometry)
SEARCHES: tuple[str, ...] = get_args(Search)


@dataclass(frozen=True)
class MappingOptions:
    """``geometry``: real (true stride/padding/dilation) or paper (stride-1 valid conv, section 2).
    ``search``: optimal (exhaustive, spec tie-break) or paper (the published code, bit for bit)."""

    geometry: Geometry = "real"
    search: Search = "optimal"

    def __post_init__(self) -> None:
        if self.geometry not in GEOMETRIES:
            raise ConfigError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {self.geometry!r}")
        if self.search not in SEARCHES:
            raise ConfigError(f"search must be one of {', '.join(SEARCHES)}, got {self.search!r}")


@dataclass(frozen=True)
class Window:
    """A parallel window: ``a`` x ``b`` outputs from a ``pw_h`` x ``pw_w`` input patch, with ``ict``
    input and ``oct`` output channels placed per tile (for im2col and flex, whose tiles cut channels
    anywhere, the channels one tile spans on average, rounded up)."""

    a: int
    b: int
    pw_h: int
    pw_w: int
    ict: int
    oct: int

    def label(self) -> str:
        return f"{self.pw_h}x{self.pw_w}x{self.ict}x{self.oct}"


@dataclass(frozen=True)
class LayerMapping:
    """One layer mapped by one strategy on one array.

    ``cycles`` counts array activations for the whole layer (all groups, all tiles). ``arrays`` is the
    number of R x C arrays that hold the layer when the network is preloaded (section 8).
    ``groups_per_tile`` > 1 means several groups of a grouped conv share one tile block-diagonally
    (flex only). ``layout`` says how the tiles cut the layer's weights (:mod:`imcflow.mapping.layout`);
    the simulator and the cost model read it from here. ``fallback`` names the strategy whose numbers
    were reported instead (VW-SDK -> im2col, whose plan then has im2col's flat layout).
    """

    method: str
    layer: str
    window: Window
    row_tiles: int
    col_tiles: int
    groups: int
    groups_per_tile: int
    windows_h: int
    windows_w: int
    out_h: int
    out_w: int
    cycles: int
    arrays: int
    tile_utilization: float
    avg_utilization: float
    mac_efficiency: float
    lb_mac: int
    lb_col: int
    label: str
    layout: TileLayout
    fallback: str | None = None

    @property
    def lower_bound(self) -> int:
        return max(self.lb_mac, self.lb_col)

    @property
    def cycles_over_lb(self) -> float:
        return self.cycles / self.lower_bound

    @property
    def windows(self) -> int:
        return self.windows_h * self.windows_w

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["window"] = asdict(self.window)
        d["layout"] = self.layout.name
        d["lower_bound"] = self.lower_bound
        d["cycles_over_lb"] = self.cycles_over_lb
        return d


@runtime_checkable
class MappingStrategy(Protocol):
    """A way of placing one conv layer on crossbars. Implement ``name``, ``description`` and ``map`` and
    register it; the plans ``map`` returns carry their tile layout (``build_mapping(..., layout=...)``),
    which is all the simulator and the cost model need to know about the strategy."""

    name: str
    description: str

    def map(self, problem: LayerProblem, array: ArraySpec, options: MappingOptions,
            layer_name: str = "") -> LayerMapping: ...

    def __hash__(self) -> int: ...  # plans are cached per (strategy, problem, array) in mapping.network

    # Optional: ``map_many(problem, arrays, options) -> list[LayerMapping]``, the same results for
    # several arrays at once (used by map_sweep); strategies without it are called once per array.


def _check_strategy(strategy: object) -> None:
    if not isinstance(strategy, MappingStrategy):
        raise ConfigError(f"{strategy!r} does not implement MappingStrategy (name, description, map)")


#: Every mapping strategy by name (the CLI's ``--method``); third-party strategies are found through the
#: ``imcflow.strategies`` entry-point group.
STRATEGIES: Registry[MappingStrategy] = Registry("mapping method", entry_points="imcflow.strategies",
                                                 check=_check_strategy)


def register_strategy(strategy: MappingStrategy, *, replace: bool = False) -> MappingStrategy:
    """Add a strategy to the registry (its ``name`` is the key used by ``--method``)."""
    return STRATEGIES.add(strategy, replace=replace)


def get_strategy(name: str | MappingStrategy) -> MappingStrategy:
    """The registered strategy called ``name`` (a strategy object is returned as it is)."""
    return STRATEGIES.get(name) if isinstance(name, str) else name


def method_title(name: str) -> str:
    """How reports print a strategy: its ``title`` attribute (optional), else its name.

    >>> method_title("vwsdk"), method_title("no-such-method")
    ('VW-SDK', 'no-such-method')
    """
    strategy = STRATEGIES.get(name) if name in STRATEGIES else None
    return str(getattr(strategy, "title", name))


def strategy_names() -> list[str]:
    """Every registered strategy, built-ins first (im2col, sdk, vwsdk, flex), then plugins."""
    return STRATEGIES.names()


# ---------------------------------------------------------------------------------------------------
# Shared arithmetic: lower bounds and utilization (mapping.md section 7), one place for all strategies.


@lru_cache(maxsize=65536)
def lower_bounds(problem: LayerProblem, array: ArraySpec) -> tuple[int, int]:
    """(LB_mac, LB_col) of the whole layer; no mapping of the im2col/SDK/VW-SDK family beats max of both.

    >>> from imcflow.mapping.geometry import LayerProblem
    >>> lower_bounds(LayerProblem(26, 26, 3, 3, 256, 512), ArraySpec(512, 512))
    (3042, 3380)
    """
    r, c = array.rows, array.usable_cols
    outputs = problem.out_h * problem.out_w
    oc_total = problem.oc * problem.groups
    lb_mac = ceil_div(problem.macs, r * c)
    lb_col = ceil_div(outputs * oc_total * ceil_div(problem.taps * problem.ic, r), c)
    return int(lb_mac), int(lb_col)


def build_mapping(method: str, problem: LayerProblem, array: ArraySpec, *, layout: TileLayout, a: int,
                  b: int, row_tiles: int, col_tiles: int, ict: int, oct: int, tile_weights: float,
                  groups_per_tile: int = 1, label: str | None = None,
                  fallback: str | None = None, layer_name: str = "") -> LayerMapping:
    """Assemble a :class:`LayerMapping` from a strategy's choice, computing every derived number once.

    ``tile_weights`` is the number of weight cells (one weight = one usable column slot) in the
    fullest tile and ``layout`` how the tiles cut the weights; the strategy knows both, this function
    does the rest.
    """
    groups = problem.groups
    wh, ww = -(-problem.out_h // a), -(-problem.out_w // b)
    tile_sets = -(-groups // groups_per_tile)  # groups run as independent convs
    arrays = row_tiles * col_tiles * tile_sets
    cycles = wh * ww * arrays
    cells = array.rows * array.usable_cols
    macs = problem.macs
    lb_mac, lb_col = lower_bounds(problem, array)
    window = Window(a, b, problem.pixels_h(a), problem.pixels_w(b), ict, oct)
    # Built through __dict__ rather than the frozen dataclass __init__ (one object.__setattr__ per
    # field): plan assembly is the hot path of array sweeps, and every value here is already checked.
    mapping = object.__new__(LayerMapping)
    mapping.__dict__.update(
        method=method, layer=layer_name, window=window, row_tiles=row_tiles, col_tiles=col_tiles,
        groups=groups, groups_per_tile=groups_per_tile, windows_h=int(wh), windows_w=int(ww),
        out_h=problem.out_h, out_w=problem.out_w, cycles=int(cycles), arrays=int(arrays),
        tile_utilization=tile_weights / cells,
        avg_utilization=macs * a * b / (problem.out_h * problem.out_w * cells * arrays),
        mac_efficiency=macs / (cycles * cells),
        lb_mac=lb_mac, lb_col=lb_col, label=label or window.label(), layout=layout, fallback=fallback)
    return mapping
