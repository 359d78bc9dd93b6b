"""imcflow's chip model beside a real NeuroSim run: per-layer and total latency, energy and area.

:func:`compare_with_log` pairs each layer of a :class:`~imcflow.cost.periphery.ChipCost` with the
same layer of a parsed NeuroSim log (:mod:`imcflow.frontends.neurosim_log`) and reports both and
their ratio (imcflow / NeuroSim). Totals follow NeuroSim: pipelined latency is the pipeline cycle
(slowest layer), layer-by-layer latency the sum; energy is dynamic read energy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imcflow.cost.periphery import ChipCost
from imcflow.errors import ConfigError
from imcflow.frontends.neurosim_log import NeuroSimLog


@dataclass(frozen=True)
class ComparisonRow:
    """One layer (or ``total`` / ``area``): imcflow's and NeuroSim's figure."""

    layer: str
    latency_s: float
    neurosim_latency_s: float
    energy_j: float
    neurosim_energy_j: float

    @property
    def latency_ratio(self) -> float:
        return self.latency_s / self.neurosim_latency_s

    @property
    def energy_ratio(self) -> float:
        return self.energy_j / self.neurosim_energy_j

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "latency_s": self.latency_s,
                "neurosim_latency_s": self.neurosim_latency_s,
                "latency_ratio": self.latency_ratio, "energy_j": self.energy_j,
                "neurosim_energy_j": self.neurosim_energy_j, "energy_ratio": self.energy_ratio}


@dataclass(frozen=True)
class ChipComparison:
    """Every layer and the totals, with the chip area of both."""

    model: str
    pipelined: bool
    rows: tuple[ComparisonRow, ...]
    total: ComparisonRow
    area_mm2: float
    neurosim_area_mm2: float
    neurosim_ops: int
    tops_per_w: float
    neurosim_tops_per_w: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def area_ratio(self) -> float:
        return self.area_mm2 / self.neurosim_area_mm2

    @property
    def worst_layer_ratio(self) -> float:
        """The largest factor (>= 1) between imcflow and NeuroSim over every layer's latency and energy."""
        return max(max(r.latency_ratio, 1 / r.latency_ratio, r.energy_ratio, 1 / r.energy_ratio)
                   for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "pipelined": self.pipelined, "layers": [r.to_dict() for r in self.rows],
                "total": self.total.to_dict(), "area_mm2": self.area_mm2,
                "neurosim_area_mm2": self.neurosim_area_mm2, "area_ratio": self.area_ratio,
                "worst_layer_ratio": self.worst_layer_ratio, "neurosim_ops": self.neurosim_ops,
                "tops_per_w": self.tops_per_w}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([r.to_dict() for r in (*self.rows, self.total)])

    def table_rows(self) -> list[list[Any]]:
        """Rows for a table: layer, latency (us) both and ratio, energy (uJ) both and ratio."""
        return [[r.layer, r.latency_s * 1e6, r.neurosim_latency_s * 1e6, r.latency_ratio,
                 r.energy_j * 1e6, r.neurosim_energy_j * 1e6, r.energy_ratio]
                for r in (*self.rows, self.total)]


TABLE_HEADERS = ["layer", "latency us", "NeuroSim us", "ratio", "energy uJ", "NeuroSim uJ", "ratio"]


def compare_with_log(cost: ChipCost, log: NeuroSimLog) -> ChipComparison:
    """Pair ``cost`` with the NeuroSim run ``log`` of the same network (see the module docstring)."""
    if len(cost.layers) != len(log.layers):
        raise ConfigError(f"the NeuroSim log has {len(log.layers)} layers, the costed network "
                          f"{len(cost.layers)}")
    if cost.pipelined != log.pipelined:
        raise ConfigError(f"the NeuroSim log is {'pipelined' if log.pipelined else 'layer by layer'}; "
                          f"cost the network the same way")
    rows = tuple(ComparisonRow(str(i + 1), ours.latency_s, ref["latency_s"], ours.energy_j, ref["energy_j"])
                 for i, (ours, ref) in enumerate(zip(cost.layers, log.layers, strict=False)))
    total = ComparisonRow("total", cost.latency_s, log.chip["latency_s"], cost.energy_j, log.chip["energy_j"])
    return ChipComparison(cost.model, cost.pipelined, rows, total, cost.area_mm2, log.chip["area_mm2"],
                          cost.neurosim_ops, cost.tops_per_w())
