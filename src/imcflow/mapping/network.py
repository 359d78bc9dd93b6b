"""Map a whole network: every layer with every requested strategy, the per-layer best, and totals."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import AnyLayer, ConvLayer, Network, as_network
from imcflow.mapping.base import (
    LayerMapping,
    MappingOptions,
    MappingStrategy,
    get_strategy,
    strategy_names,
)
from imcflow.mapping.composite import CompositeMapper, composite_mapper, composite_types
from imcflow.mapping.geometry import LayerProblem
from imcflow.validate import check_type


def check_methods(methods: object) -> tuple[str | MappingStrategy, ...]:
    """Mapping methods as a tuple: one name, or an iterable of names or strategy objects; unknown
    names are refused listing the known ones."""
    if isinstance(methods, (str, MappingStrategy)):
        methods = (methods,)
    if not isinstance(methods, Iterable):
        raise ConfigError(f"methods must be a method name or a list of them ({', '.join(strategy_names())}), "
                          f"got {type(methods).__name__} {methods!r}")
    out = tuple(methods)
    for m in out:
        if not isinstance(m, (str, MappingStrategy)):
            raise ConfigError(f"methods: each must be a name ({', '.join(strategy_names())}) or a "
                              f"MappingStrategy, got {type(m).__name__} {m!r}")
        get_strategy(m)
    return out


def _check_target(array: object, options: object) -> None:
    check_type("array", array, ArraySpec, hint="build one with parse_array('64x64') or ArraySpec(64, 64)")
    if options is not None:
        check_type("options", options, MappingOptions)


@lru_cache(maxsize=65536)
def _map_problem(strategy: MappingStrategy, problem: LayerProblem, array: ArraySpec,
                 options: MappingOptions) -> LayerMapping:
    # Networks repeat layer shapes (ResNet-50 has 16 distinct ones in 54): solve each shape once.
    return strategy.map(problem, array, options)


def map_layer(layer: AnyLayer, array: ArraySpec, method: str | MappingStrategy = "vwsdk",
              options: MappingOptions | None = None) -> LayerMapping:
    """Map one layer with one strategy.

    >>> from imcflow.hardware import ArraySpec
    >>> m = map_layer(ConvLayer("c", 128, 128, 3, input_size=112), ArraySpec(512, 512), "vwsdk",
    ...               MappingOptions(geometry="paper"))
    >>> m.cycles, m.label
    (12100, '4x4x32x128')
    """
    _check_target(array, options)
    options = options or MappingOptions()
    return _map_one(layer, get_strategy(method), array, options)


@lru_cache(maxsize=16384)
def _map_problem_many(strategy: MappingStrategy, problem: LayerProblem, arrays: tuple[ArraySpec, ...],
                      options: MappingOptions) -> tuple[LayerMapping, ...]:
    many = getattr(strategy, "map_many", None)  # optional: searches vectorised over arrays
    if many is None:
        return tuple(_map_problem(strategy, problem, a, options) for a in arrays)
    return tuple(many(problem, arrays, options))


@lru_cache(maxsize=65536)
def _problem(layer: ConvLayer, geometry: str) -> LayerProblem:
    return LayerProblem.from_layer(layer, geometry)


def layer_problem(layer: ConvLayer, geometry: str) -> LayerProblem:
    """The (cached) per-group problem of ``layer`` in ``geometry``."""
    return _problem(layer, geometry)


def useful_macs(layer: AnyLayer, geometry: str) -> int:
    """Multiply-accumulates the layer really needs in ``geometry`` (all groups, all factors)."""
    if isinstance(layer, ConvLayer):
        return _problem(layer, geometry).macs
    return _composite(layer).useful_macs(layer, geometry)


def _composite(layer: object) -> CompositeMapper:
    mapper = composite_mapper(layer)
    if mapper is None:
        known = ", ".join(["ConvLayer"] + [t.__name__ for t in composite_types()])
        raise ConfigError(f"cannot map {layer!r}: not a layer record this engine knows ({known})")
    return mapper


def _map_one(layer: AnyLayer, strategy: MappingStrategy, array: ArraySpec,
             options: MappingOptions) -> LayerMapping:
    # ConvLayer first: the common case costs one isinstance check on every layer of a sweep.
    if isinstance(layer, ConvLayer):
        return _named(_map_problem(strategy, _problem(layer, options.geometry), array, options), layer)
    return _composite(layer).map(layer, strategy, array, options)


def _named(result: LayerMapping, layer: ConvLayer) -> LayerMapping:
    if result.layer == layer.name:
        return result
    # The cached plan is shared by every layer of this shape; each layer gets its own named copy
    # (a shallow copy of the frozen record: cheaper than dataclasses.replace on hot sweeps).
    named = object.__new__(LayerMapping)
    named.__dict__.update(result.__dict__)
    named.__dict__["layer"] = layer.name
    return named


@dataclass(frozen=True)
class LayerReport:
    """One layer with its mapping under each requested method and the best of them."""

    layer: AnyLayer
    mappings: dict[str, LayerMapping] = field(hash=False)
    best: str

    def __getitem__(self, method: str) -> LayerMapping:
        return self.mappings[method]

    def to_dict(self) -> dict[str, Any]:
        d = self.layer.to_dict()
        for method, m in self.mappings.items():
            d[method] = mapping_to_dict(m)
        d["best"] = self.best
        return d


def mapping_to_dict(m: LayerMapping) -> dict[str, Any]:
    """The documented JSON shape of one layer's mapping under one method (see README)."""
    w = m.window
    return {
        "cycles": m.cycles,
        "window": {"a": w.a, "b": w.b, "ict": w.ict, "oct": w.oct, "pw_h": w.pw_h, "pw_w": w.pw_w},
        "label": m.label,
        "row_tiles": m.row_tiles, "col_tiles": m.col_tiles,
        "groups_per_tile": m.groups_per_tile,
        "arrays": m.arrays,
        "tile_utilization": m.tile_utilization,
        "avg_utilization": m.avg_utilization,
        "mac_efficiency": m.mac_efficiency,
        "lb_mac": m.lb_mac, "lb_col": m.lb_col, "lower_bound": m.lower_bound,
        "cycles_over_lb": m.cycles_over_lb,
        "fallback": m.fallback,
    }


@dataclass(frozen=True)
class MethodTotals:
    method: str
    cycles: int
    arrays: int
    lower_bound: int
    macs: int
    cells: int

    @property
    def cycles_over_lb(self) -> float:
        return self.cycles / self.lower_bound

    @property
    def mac_efficiency(self) -> float:
        return self.macs / (self.cycles * self.cells)

    def to_dict(self) -> dict[str, Any]:
        return {"cycles": self.cycles, "arrays": self.arrays, "lower_bound": self.lower_bound,
                "cycles_over_lb": self.cycles_over_lb, "mac_efficiency": self.mac_efficiency}


@dataclass(frozen=True)
class NetworkMapping:
    """Every layer of a network mapped on one array: per-layer reports, totals and speedups."""

    network: str
    array: ArraySpec
    options: MappingOptions
    methods: tuple[str, ...]
    layers: tuple[LayerReport, ...]

    def totals(self, method: str) -> MethodTotals:
        """Network totals of one method, or of ``"best"`` (each layer's fewest-cycle method)."""
        if method != "best" and method not in self.methods:
            raise ConfigError(f"method {method!r} was not mapped; mapped: {', '.join(self.methods)}")
        picks = [r.mappings[r.best if method == "best" else method] for r in self.layers]
        return MethodTotals(method, sum(m.cycles for m in picks), sum(m.arrays for m in picks),
                            sum(m.lower_bound for m in picks), self.useful_macs,
                            self.array.rows * self.array.usable_cols)

    @cached_property
    def useful_macs(self) -> int:
        """MACs of the whole network in the mapped geometry."""
        return sum(useful_macs(r.layer, self.options.geometry) for r in self.layers)

    def speedups(self) -> dict[str, float]:
        """Ratios of total cycles, e.g. ``"sdk/vwsdk"`` = SDK cycles / VW-SDK cycles."""
        pairs = [("sdk", "vwsdk"), ("im2col", "vwsdk"), ("vwsdk", "flex"), ("im2col", "flex")]
        return {f"{x}/{y}": self.totals(x).cycles / self.totals(y).cycles
                for x, y in pairs if x in self.methods and y in self.methods}

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "array": self.array.to_dict(),
            "options": {"geometry": self.options.geometry, "search": self.options.search,
                        "methods": list(self.methods)},
            "layers": [r.to_dict() for r in self.layers],
            "totals": {m: self.totals(m).to_dict() for m in (*self.methods, "best")},
            "speedups": self.speedups(),
        }

    def to_frame(self):
        """One row per (layer, method), flat columns; pandas is imported only here."""
        import pandas as pd

        rows = []
        for r in self.layers:
            base = r.layer.to_dict()
            for method, m in r.mappings.items():
                d = mapping_to_dict(m)
                win = d.pop("window")
                rows.append({"layer": r.layer.name, "method": method, "best": method == r.best,
                             "H": base["H"], "W": base["W"], "IC": base["IC"], "OC": base["OC"],
                             "Kh": base["Kh"], "Kw": base["Kw"], "stride": base["stride"][0],
                             "padding": base["padding"][0], "groups": base["groups"],
                             **{f"window_{k}": v for k, v in win.items()}, **d})
        return pd.DataFrame(rows)


def map_network(network: Network | Sequence[AnyLayer], array: ArraySpec,
                methods: Iterable[str | MappingStrategy] | None = None,
                options: MappingOptions | None = None) -> NetworkMapping:
    """Map every layer of ``network`` with each method (default: every registered strategy).

    ``options.geometry`` defaults to the network's own (``real`` for models, ``paper`` for the
    published layer lists).
    """
    network = as_network(network)
    _check_target(array, options)
    if options is None:
        options = MappingOptions(geometry=network.geometry)  # type: ignore[arg-type]
    chosen = tuple(dict.fromkeys(check_methods(strategy_names() if methods is None else methods)))
    if not chosen:
        raise ConfigError(f"no mapping method given; known: {', '.join(strategy_names())}")
    strategies = [get_strategy(m) for m in chosen]
    reports = []
    for layer in network.layers:
        mappings = {s.name: _map_one(layer, s, array, options) for s in strategies}
        reports.append(LayerReport(layer, mappings, _best(mappings)))
    return NetworkMapping(network.name, array, options, tuple(s.name for s in strategies),
                          tuple(reports))


def map_sweep(network: Network | Sequence[AnyLayer], arrays: Sequence[ArraySpec],
              methods: Iterable[str | MappingStrategy] | None = None,
              options: MappingOptions | None = None) -> tuple[NetworkMapping, ...]:
    """Map a network on several arrays at once: one :class:`NetworkMapping` per array, equal to
    ``map_network`` on each, but each layer shape is searched once for all arrays (vectorised).

    >>> from imcflow.networks import load_network
    >>> [r.totals("vwsdk").cycles for r in map_sweep(load_network("resnet18-paper"),
    ...                                                [ArraySpec(256, 256), ArraySpec(512, 512)])]
    [10287, 4294]
    """
    network = as_network(network)
    if isinstance(arrays, ArraySpec) or not isinstance(arrays, Iterable):
        raise ConfigError(f"arrays must be a list of ArraySpec, got {type(arrays).__name__} {arrays!r}")
    arrays = tuple(arrays)
    for a in arrays:
        _check_target(a, options)
    if options is None:
        options = MappingOptions(geometry=network.geometry)  # type: ignore[arg-type]
    chosen = check_methods(strategy_names() if methods is None else methods)
    strategies = [get_strategy(m) for m in dict.fromkeys(chosen)]
    per_array: list[list[LayerReport]] = [[] for _ in arrays]
    for layer in network.layers:
        columns = {}
        for s in strategies:
            if isinstance(layer, ConvLayer):
                found = _map_problem_many(s, _problem(layer, options.geometry), arrays, options)
                columns[s.name] = [_named(m, layer) for m in found]
            else:
                columns[s.name] = [_map_one(layer, s, a, options) for a in arrays]
        for k in range(len(arrays)):
            mappings = {name: col[k] for name, col in columns.items()}
            per_array[k].append(LayerReport(layer, mappings, _best(mappings)))
    names = tuple(s.name for s in strategies)
    return tuple(NetworkMapping(network.name, a, options, names, tuple(reports))
                 for a, reports in zip(arrays, per_array, strict=True))


def _best(mappings: dict[str, LayerMapping]) -> str:
    """Fewest cycles; ties go to the earlier (simpler) method in the requested order."""
    order = list(mappings)
    return min(order, key=lambda k: (mappings[k].cycles, order.index(k)))
