"""Combine counts and components into latency, energy and area of layers and networks.

``cost_layer`` is a pure function of a layer's counts, its plan, the preset and the array;
``cost_network`` maps a network (or takes an existing :class:`~imcflow.mapping.NetworkMapping`) and
costs every layer under one method.
"""
from __future__ import annotations

from dataclasses import dataclass

from imcflow.cost.components import COMPONENTS, activation_time_s, array_area_mm2
from imcflow.cost.composite import count_composite
from imcflow.cost.counts import LayerCounts, count_layer, merge_counts
from imcflow.cost.results import MODES, LayerCost, NetworkCost
from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.hardware.preset import HardwarePreset
from imcflow.layers import ConvLayer, Network
from imcflow.mapping import MappingOptions, NetworkMapping, map_network
from imcflow.mapping.base import LayerMapping
from imcflow.validate import check_bits


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def layer_latency_s(counts: LayerCounts, preset: HardwarePreset, array: ArraySpec, mode: str) -> float:
    """``time-multiplexed``: one array runs every activation in turn (sum over tiles);
    ``preloaded``: every tile has its own array and all run their ``windows`` activations in parallel,
    so the slowest tile sets the pace."""
    times = [(activation_time_s(preset, array, t, counts.input_steps), t.count) for t in counts.tiles]
    if check_mode(mode) == "preloaded":
        return counts.windows * max(t for t, _ in times)
    return counts.windows * sum(t * n for t, n in times)


def cost_layer(counts: LayerCounts, preset: HardwarePreset, array: ArraySpec,
               mode: str = "preloaded") -> LayerCost:
    """Cost one layer from its counts.

    Energy is the sum over components of (events x energy per event); area is one array's area times
    the layer's arrays (preloaded) or one array (time-multiplexed).
    """
    energy = {name: float(c.energy_j(counts, preset)) for name, c in COMPONENTS.items()}
    per_array = array_area_mm2(preset, array, counts.input_bits, counts.output_bits)
    n = counts.arrays if check_mode(mode) == "preloaded" else 1
    area = {k: (None if v is None else v * n) for k, v in per_array.items()}
    return LayerCost(ops=2 * counts.macs, latency_s=layer_latency_s(counts, preset, array, mode),
                     energy_breakdown_j=energy, area_breakdown_mm2=area, layer=counts.layer,
                     method=counts.method, counts=counts)


def cost_factors(name: str, plan: LayerMapping, parts: list[LayerCounts], preset: HardwarePreset,
                 array: ArraySpec, mode: str = "preloaded") -> LayerCost:
    """Cost a composite layer from the counts of its factors (see :mod:`imcflow.cost.composite`):
    energy adds up; latency adds up unless the plan pipelines the factors (``combine``); area adds up
    when preloaded, and is one array's when time-multiplexed."""
    costs = [cost_layer(c, preset, array, mode) for c in parts]
    energy = {k: sum(c.energy_breakdown_j[k] for c in costs) for k in costs[0].energy_breakdown_j}
    preloaded = check_mode(mode) == "preloaded"

    def join_area(values: list[float | None]) -> float | None:
        known = [float(v) for v in values if v is not None]
        if len(known) < len(values):
            return None
        return float(sum(known)) if preloaded else max(known)

    area = {k: join_area([c.area_breakdown_mm2[k] for c in costs]) for k in costs[0].area_breakdown_mm2}
    latencies = [c.latency_s for c in costs]
    latency = max(latencies) if getattr(plan, "combine", "sum") == "pipelined" else sum(latencies)
    return LayerCost(ops=sum(c.ops for c in costs), latency_s=latency, energy_breakdown_j=energy,
                     area_breakdown_mm2=area, layer=name, method=plan.method,
                     counts=merge_counts(name, parts))


@dataclass(frozen=True)
class CostSettings:
    """What a network cost needs besides the network: preset, mode and input precision."""

    preset: HardwarePreset
    mode: str = "preloaded"
    input_bits: int | None = None  # None: the preset's defaults.input_bits

    @property
    def bits(self) -> int:
        bits = self.input_bits if self.input_bits is not None else self.preset["defaults.input_bits"]
        return check_bits("input_bits", bits)


def preset_array(preset: HardwarePreset, rows: int, cols: int, cell_bits: int | None = None,
                 weight_bits: int | None = None) -> ArraySpec:
    """An R x C array with the preset's cell and weight bits unless given."""
    return ArraySpec(rows, cols,
                     cell_bits=cell_bits if cell_bits is not None else preset["defaults.cell_bits"],
                     weight_bits=weight_bits if weight_bits is not None else
                     preset["defaults.weight_bits"])


def cost_mapping(mapping: NetworkMapping, method: str, settings: CostSettings) -> NetworkCost:
    """Cost every layer of an existing network mapping under ``method``, or under ``"best"`` (each
    layer's fewest-cycle method, as :meth:`NetworkMapping.totals` picks it)."""
    if method != "best" and method not in mapping.methods:
        raise ConfigError(f"method {method!r} was not mapped; mapped: {', '.join(mapping.methods)}, best")
    check_mode(settings.mode)
    bits = settings.bits
    dac_bits = settings.preset["dac.bits"]
    layers = []
    for report in mapping.layers:
        plan: LayerMapping = report.mappings[report.best if method == "best" else method]
        if isinstance(report.layer, ConvLayer):
            counts = count_layer(report.layer, plan, mapping.array, input_bits=bits, dac_bits=dac_bits,
                                 geometry=mapping.options.geometry)
            layers.append(cost_layer(counts, settings.preset, mapping.array, settings.mode))
        else:
            parts = count_composite(report.layer, plan, mapping.array, input_bits=bits,
                                    dac_bits=dac_bits, geometry=mapping.options.geometry)
            layers.append(cost_factors(report.layer.name, plan, parts, settings.preset, mapping.array,
                                       settings.mode))
    a = mapping.array
    return NetworkCost(mapping.network, method, settings.preset.name, a.label, settings.mode, bits,
                       a.weight_bits, a.cell_bits, tuple(layers))


def cost_network(network: Network | list[ConvLayer], array: ArraySpec, settings: CostSettings,
                 methods: tuple[str, ...] = ("flex",),
                 options: MappingOptions | None = None) -> dict[str, NetworkCost]:
    """Map ``network`` with each method and cost it; returns ``{method: NetworkCost}``."""
    mapping = map_network(network, array, methods, options)
    return {m: cost_mapping(mapping, m, settings) for m in mapping.methods}
