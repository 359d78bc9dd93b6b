"""Render cost results (:class:`~imcflow.cost.NetworkCost` per method) as a text table, CSV or JSON.

JSON has one schema however many methods were costed: ``{methods: {method: {network, method, preset,
mode, ..., totals, layers}}, comparison: [one row per method]}`` where ``totals`` and each layer carry
``energy_j``, ``latency_s``, ``area_mm2``, ``energy_breakdown_j`` (component -> J, summing to
``energy_j``), ``area_breakdown_mm2``, ``edp_js``, ``tops_per_w``, ``tops_per_mm2``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from imcflow.cost.results import CostFigures, NetworkCost
from imcflow.io import dumps_json
from imcflow.registry import Registry
from imcflow.report.table import render_table


def comparison_rows(costs: Mapping[str, NetworkCost]) -> list[dict[str, Any]]:
    """One row per method: cycles, latency, energy, EDP, area, efficiency."""
    rows = []
    for method, nc in costs.items():
        t = nc.totals
        rows.append({"method": method, "cycles": nc.cycles, "latency_s": t.latency_s,
                     "energy_j": t.energy_j, "edp_js": t.edp_js, "area_mm2": t.area_mm2,
                     "tops_per_w": t.tops_per_w, "tops_per_mm2": t.tops_per_mm2,
                     "adc_energy_share": t.energy_breakdown_j.get("adc", 0.0) / t.energy_j
                     if t.energy_j else 0.0})
    return rows


def to_json(costs: Mapping[str, NetworkCost], with_counts: bool = True) -> str:
    """``{methods: {method: cost}, comparison: [...]}``, the same for one method or several."""
    obj = {"methods": {m: nc.to_dict(with_counts) for m, nc in costs.items()},
           "comparison": comparison_rows(costs)}
    return dumps_json(obj)


def to_csv(costs: Mapping[str, NetworkCost]) -> str:
    import pandas as pd

    frames = []
    for nc in costs.values():
        f = nc.to_frame()
        f.insert(0, "preset", nc.preset)
        f.insert(1, "mode", nc.mode)
        frames.append(f)
    return pd.concat(frames, ignore_index=True).to_csv(index=False)


def _opt(v: float | None, scale: float = 1.0) -> float | None:
    return None if v is None else v * scale


def _figure_row(name: str, method: str, cycles: int | None, f: CostFigures) -> list[Any]:
    e = f.energy_j
    adc = f.energy_breakdown_j.get("adc", 0.0)
    parts = f.energy_breakdown_j
    top = max(parts, key=lambda k: parts[k]) if e else "-"
    return [name, method, cycles, f.latency_s * 1e6, e * 1e6, _opt(f.area_mm2), f.edp_js * 1e9,
            _opt(f.tops_per_w), _opt(f.tops_per_mm2), f"{100 * adc / e:.0f}%" if e else "-", top]


HEADERS = ["layer", "method", "cycles", "latency_us", "energy_uJ", "area_mm2", "EDP_nJs", "TOPS/W",
           "TOPS/mm2", "adc%", "top component"]


def to_table(costs: Mapping[str, NetworkCost]) -> str:
    first = next(iter(costs.values()))
    title = (f"{first.network} on {first.array} arrays, preset {first.preset}, {first.mode}, "
             f"{first.input_bits}-bit inputs, {first.weight_bits}-bit weights in "
             f"{first.cell_bits}-bit cells")
    rows = []
    for method, nc in costs.items():
        rows += [_figure_row(l.layer, method, l.counts.activations if l.counts else None, l)
                 for l in nc.layers]
        rows.append(_figure_row("TOTAL", method, nc.cycles, nc.totals))
    out = render_table(HEADERS, rows, title)
    if len(costs) > 1:
        comp = [[r["method"], r["cycles"], r["latency_s"] * 1e6, r["energy_j"] * 1e6,
                 r["edp_js"] * 1e9, _opt(r["tops_per_w"]), f"{100 * r['adc_energy_share']:.0f}%"]
                for r in comparison_rows(costs)]
        out += "\n\n" + render_table(["method", "cycles", "latency_us", "energy_uJ", "EDP_nJs",
                                      "TOPS/W", "adc%"], comp, "Totals per method")
    if first.totals.area_mm2 is None:
        out += "\n(area: the preset does not report every area constant; see 'imcflow presets "\
               f"{first.preset}')"
    return out


FORMATTERS: Registry[Callable[[Mapping[str, NetworkCost]], str]] = Registry(
    "cost report format", {"table": to_table, "csv": to_csv, "json": to_json})
