"""Frozen result records of the cost model: one layer, and a whole network under one method."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from imcflow.cost.counts import LayerCounts

Mode = Literal["preloaded", "time-multiplexed"]
MODES: tuple[str, ...] = ("preloaded", "time-multiplexed")


def _sum_optional(values) -> float | None:
    values = list(values)
    return None if any(v is None for v in values) else float(sum(values))


def _ratio(num: float, den: float | None) -> float | None:
    return None if den is None or den <= 0 else num / den


@dataclass(frozen=True)
class CostFigures:
    """Latency, energy (by component) and area (by group) of one layer or a whole network.

    ``ops`` = 2 x useful MACs. ``area_mm2`` is None when the preset does not report some area.
    """

    ops: int
    latency_s: float
    energy_breakdown_j: dict[str, float] = field(hash=False)
    area_breakdown_mm2: dict[str, float | None] = field(hash=False)

    @property
    def energy_j(self) -> float:
        return float(sum(self.energy_breakdown_j.values()))

    @property
    def area_mm2(self) -> float | None:
        return _sum_optional(self.area_breakdown_mm2.values())

    @property
    def edp_js(self) -> float:
        """Energy-delay product in joule-seconds."""
        return self.energy_j * self.latency_s

    @property
    def tops_per_w(self) -> float | None:
        return _ratio(self.ops / 1e12, self.energy_j)

    @property
    def tops_per_mm2(self) -> float | None:
        area = self.area_mm2
        return None if area is None or area <= 0 or self.latency_s <= 0 else \
            self.ops / self.latency_s / 1e12 / area

    def figures_dict(self) -> dict[str, Any]:
        return {"energy_j": self.energy_j, "latency_s": self.latency_s, "area_mm2": self.area_mm2,
                "edp_js": self.edp_js, "tops_per_w": self.tops_per_w,
                "tops_per_mm2": self.tops_per_mm2, "ops": self.ops,
                "energy_breakdown_j": dict(self.energy_breakdown_j),
                "area_breakdown_mm2": dict(self.area_breakdown_mm2)}


@dataclass(frozen=True)
class LayerCost(CostFigures):
    """One mapped layer costed on one preset: the figures and the counts they come from."""

    layer: str = ""
    method: str = ""
    counts: LayerCounts | None = field(default=None, hash=False)

    def to_dict(self) -> dict[str, Any]:
        c = self.counts
        return {"layer": self.layer, "method": self.method, **self.figures_dict(),
                "counts": c.to_dict() if c is not None else None}


@dataclass(frozen=True)
class NetworkCost:
    """Every layer of a network mapped by one method and costed on one preset, in one mode.

    Network latency is the sum of layer latencies (layers run one after another). Area: with every
    layer's arrays present (``preloaded``) the sum of layer areas; ``time-multiplexed`` runs all on one
    array, so the area of one array.
    """

    network: str
    method: str
    preset: str
    array: str
    mode: str
    input_bits: int
    weight_bits: int
    cell_bits: int
    layers: tuple[LayerCost, ...]

    @property
    def totals(self) -> CostFigures:
        energy: dict[str, float] = {}
        for l in self.layers:
            for k, v in l.energy_breakdown_j.items():
                energy[k] = energy.get(k, 0.0) + v
        area: dict[str, float | None] = {}
        for k in self.layers[0].area_breakdown_mm2:
            vals = [l.area_breakdown_mm2[k] for l in self.layers]
            known = [v for v in vals if v is not None]
            if len(known) < len(vals):
                area[k] = None
            else:
                area[k] = float(sum(known)) if self.mode == "preloaded" else float(max(known))
        return CostFigures(sum(l.ops for l in self.layers), sum(l.latency_s for l in self.layers),
                           energy, area)

    @property
    def cycles(self) -> int:
        return sum(l.counts.activations for l in self.layers if l.counts is not None)

    def to_dict(self, with_counts: bool = True) -> dict[str, Any]:
        layers = []
        for l in self.layers:
            d = l.to_dict()
            if not with_counts:
                d.pop("counts")
            layers.append(d)
        return {"network": self.network, "method": self.method, "preset": self.preset,
                "array": self.array, "mode": self.mode, "input_bits": self.input_bits,
                "weight_bits": self.weight_bits, "cell_bits": self.cell_bits,
                "cycles": self.cycles, "totals": self.totals.figures_dict(), "layers": layers}

    def to_frame(self):
        """One row per layer plus a ``TOTAL`` row; energy components as ``energy_<name>_j`` columns."""
        import pandas as pd

        rows = []
        for name, method, fig, cycles in (
                [(l.layer, l.method, l, l.counts.activations if l.counts else None) for l in self.layers]
                + [("TOTAL", self.method, self.totals, self.cycles)]):
            row = {"layer": name, "method": method, "cycles": cycles, "latency_s": fig.latency_s,
                   "energy_j": fig.energy_j, "area_mm2": fig.area_mm2, "edp_js": fig.edp_js,
                   "tops_per_w": fig.tops_per_w, "tops_per_mm2": fig.tops_per_mm2}
            row.update({f"energy_{k}_j": v for k, v in fig.energy_breakdown_j.items()})
            row.update({f"area_{k}_mm2": v for k, v in fig.area_breakdown_mm2.items()})
            rows.append(row)
        return pd.DataFrame(rows)
