"""Network cost totals in one vectorised pass, for sweeps of thousands of points.

:func:`network_totals` equals ``cost_mapping(mapping, method, settings).totals`` (a test compares them
on every built-in strategy): every layer whose plan is a flat or channel tiling is scored at once by
:func:`imcflow.mapping.objective.score` (the cost model's components applied to the layer's event
sums); any other layer (a composite layer, an over-filled published-search plan, a custom layout) goes
through the ordinary per-layer cost path. :class:`NetworkPlans` keeps the preset-independent part, so
a sweep that prices one mapping with many presets, ADC or input bit widths builds it once.
"""
from __future__ import annotations

from dataclasses import dataclass

from imcflow.cost.components import array_area_mm2
from imcflow.cost.model import CostSettings, cost_mapping
from imcflow.cost.results import CostFigures
from imcflow.layers import ConvLayer
from imcflow.mapping.network import NetworkMapping, layer_problem
from imcflow.mapping.objective import Candidates, plans_as_candidates, score


@dataclass(frozen=True)
class NetworkPlans:
    """One network mapping under one method, in the vectorised form: the plans scored at once
    (``fast``) and the rest (``slow``, costed layer by layer)."""

    mapping: NetworkMapping
    method: str
    fast: Candidates | None
    slow: NetworkMapping | None

    @classmethod
    def of(cls, mapping: NetworkMapping, method: str) -> NetworkPlans:
        geometry = mapping.options.geometry
        simple = [r for r in mapping.layers if isinstance(r.layer, ConvLayer)]
        fast, slow = None, [r for r in mapping.layers if not isinstance(r.layer, ConvLayer)]
        if simple:
            problems = [layer_problem(r.layer, geometry) for r in simple]  # type: ignore[arg-type]
            cand, exact = plans_as_candidates(problems, [r.mappings[method] for r in simple],
                                              mapping.array)
            fast = Candidates(**{k: v[exact] for k, v in cand.__dict__.items()})
            slow += [r for r, ok in zip(simple, exact, strict=True) if not ok]
        rest = (NetworkMapping(mapping.network, mapping.array, mapping.options, mapping.methods,
                               tuple(slow)) if slow else None)
        return cls(mapping, method, fast, rest)

    def totals(self, settings: CostSettings) -> CostFigures:
        """Latency, energy by component and area of the whole network priced with ``settings``."""
        energy: dict[str, float] = {}
        latency, arrays = 0.0, 0
        if self.fast is not None:
            scored = score(self.fast, self.mapping.array, settings, breakdown=True)
            energy = {name: float(values.sum()) for name, values in scored["energy_breakdown"].items()}
            latency = float(scored["latency"].sum())
            arrays = int(self.fast.tiles.sum())
        if self.slow is not None:
            for l in cost_mapping(self.slow, self.method, settings).layers:
                for name, value in l.energy_breakdown_j.items():
                    energy[name] = energy.get(name, 0.0) + value
                latency += l.latency_s
                arrays += l.counts.arrays if l.counts is not None else 0
        per_array = array_area_mm2(settings.preset, self.mapping.array, settings.bits, settings.bits)
        n = arrays if settings.mode == "preloaded" else 1
        area = {k: (None if v is None else v * n) for k, v in per_array.items()}
        return CostFigures(2 * self.mapping.useful_macs, latency, energy, area)


def network_totals(mapping: NetworkMapping, method: str, settings: CostSettings) -> CostFigures:
    """Latency, energy by component and area of the whole network under ``method``.

    >>> import numpy as np
    >>> from imcflow.hardware.preset import load_preset
    >>> from imcflow.mapping import map_network
    >>> from imcflow.networks import load_network
    >>> from imcflow.hardware import ArraySpec
    >>> m = map_network(load_network("resnet18-paper"), ArraySpec(512, 512), ["vwsdk"])
    >>> s = CostSettings(load_preset("isaac"))
    >>> bool(np.isclose(network_totals(m, "vwsdk", s).energy_j, cost_mapping(m, "vwsdk", s).totals.energy_j))
    True
    """
    return NetworkPlans.of(mapping, method).totals(settings)
