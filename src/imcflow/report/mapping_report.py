"""Text, CSV and JSON renderings of a :class:`~imcflow.mapping.NetworkMapping`."""
from __future__ import annotations

import json
from collections.abc import Callable

from imcflow.mapping import NetworkMapping
from imcflow.registry import Registry
from imcflow.report.table import render_table

METHOD_TITLES = {"im2col": "im2col", "sdk": "SDK", "vwsdk": "VW-SDK", "flex": "flex"}


def _shape(layer) -> str:
    s = f"{layer.H}x{layer.W} {layer.Kh}x{layer.Kw}x{layer.IC}x{layer.OC}"
    if layer.stride != (1, 1):
        s += f" s{layer.stride[0]}" if layer.stride[0] == layer.stride[1] else f" s{layer.stride}"
    if layer.padding != (0, 0):
        s += f" p{layer.padding[0]}" if layer.padding[0] == layer.padding[1] else f" p{layer.padding}"
    if layer.groups > 1:
        s += f" g{layer.groups}"
    return s


def mapping_table(result: NetworkMapping) -> str:
    """The per-layer table, network totals and speedups, as ``imcflow map`` prints them.

    Per layer: cycles of every method, then for each method its window ``PWh x PWw x ICt x OCt``,
    tiles (row x col), tile / average utilization; then the best method's MAC efficiency, LB and
    cycles/LB.
    """
    methods = result.methods
    headers = ["layer", "shape (HxW KhxKwxICxOC)"] + [f"{METHOD_TITLES.get(m, m)} cycles" for m in methods]
    # Window details for the variable-window methods (the full set is in --format csv/json).
    detailed = [m for m in methods if m in ("vwsdk", "flex")] or list(methods)
    for m in detailed:
        t = METHOD_TITLES.get(m, m)
        headers += [f"{t} window", f"{t} tiles", f"{t} util tile/avg"]
    headers += ["best", "MAC eff", "LB", "cycles/LB"]
    rows = []
    for r in result.layers:
        row = [r.layer.name, _shape(r.layer)] + [r[m].cycles for m in methods]
        for m in detailed:
            x = r[m]
            tiles = f"{x.row_tiles}x{x.col_tiles}" + (f"/{x.groups_per_tile}g" if x.groups_per_tile > 1 else "")
            if x.groups > 1:
                tiles += f" x{-(-x.groups // x.groups_per_tile)}"
            row += [x.label, tiles, f"{x.tile_utilization:.1%}/{x.avg_utilization:.1%}"]
        b = r[r.best]
        row += [METHOD_TITLES.get(r.best, r.best), f"{b.mac_efficiency:.1%}", b.lower_bound,
                round(b.cycles_over_lb, 3)]
        rows.append(row)
    a = result.array
    title = (f"{result.network} on {a.rows}x{a.cols} arrays (C'={a.usable_cols}, "
             f"{a.weight_bits}-bit weights in {a.cell_bits}-bit cells), geometry={result.options.geometry}, "
             f"search={result.options.search}")
    parts = [render_table(headers, rows, title)]
    trows = []
    for m in (*methods, "best"):
        t = result.totals(m)
        trows.append([METHOD_TITLES.get(m, m), t.cycles, t.arrays, f"{t.mac_efficiency:.1%}",
                      t.lower_bound, round(t.cycles_over_lb, 3)])
    parts.append(render_table(["method", "cycles", "arrays (preloaded)", "MAC eff", "LB", "cycles/LB"],
                              trows, "\nNetwork totals"))
    sp = result.speedups()
    if sp:
        parts.append("\nSpeedups (ratio of total cycles): " + ", ".join(
            "/".join(METHOD_TITLES.get(m, m) for m in k.split("/")) + f" = {v:.3f}x"
            for k, v in sp.items()))
    return "\n".join(parts)


def mapping_csv(result: NetworkMapping) -> str:
    return result.to_frame().to_csv(index=False)


def mapping_json(result: NetworkMapping) -> str:
    return json.dumps(result.to_dict(), indent=2)


FORMATTERS: Registry[Callable[[NetworkMapping], str]] = Registry(
    "mapping report format", {"table": mapping_table, "csv": mapping_csv, "json": mapping_json})
