"""Text, CSV and JSON renderings of a :class:`~imcflow.mapping.NetworkMapping`."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imcflow.io import dumps_json
from imcflow.layers import ConvLayer
from imcflow.mapping import NetworkMapping, method_title
from imcflow.registry import Registry
from imcflow.report.table import render_table


def _shape(layer) -> str:
    s = f"{layer.H}x{layer.W} {layer.Kh}x{layer.Kw}x{layer.IC}x{layer.OC}"
    if layer.stride != (1, 1):
        s += f" s{layer.stride[0]}" if layer.stride[0] == layer.stride[1] else f" s{layer.stride}"
    if layer.padding != (0, 0):
        s += f" p{layer.padding[0]}" if layer.padding[0] == layer.padding[1] else f" p{layer.padding}"
    if layer.groups > 1:
        s += f" g{layer.groups}"
    return s


def _title(result: NetworkMapping) -> str:
    a = result.array
    return (f"{result.network} on {a.rows}x{a.cols} arrays (C'={a.usable_cols}, "
            f"{a.weight_bits}-bit weights in {a.cell_bits}-bit cells), geometry={result.options.geometry}, "
            f"search={result.options.search}")


def coincidence_note(result: NetworkMapping) -> str | None:
    """Why several methods report the same cycles, or None when every method differs somewhere.

    Methods coincide when they give equal cycles on every layer. When all of them do and every plan
    is a one-pixel (1x1 output) window, the array's usable columns C' are the cause: C' = C / slices
    (a weight of ``weight_bits`` spans ``weight_bits / cell_bits`` cells). With C' no larger than any
    layer's output channels, one output pixel already fills every column tile, so no larger output
    window lowers the cycles and every method maps like im2col.
    """
    methods = result.methods
    if len(methods) < 2:
        return None
    per_layer = {m: tuple(r[m].cycles for r in result.layers) for m in methods}
    classes: dict[tuple[int, ...], list[str]] = {}
    for m in methods:
        classes.setdefault(per_layer[m], []).append(m)
    same = [ms for ms in classes.values() if len(ms) > 1]
    if not same:
        return None
    a = result.array
    if len(classes) == 1:
        names = ", ".join(method_title(m) for m in methods)
        one_pixel = all(r[m].window.a == r[m].window.b == 1 for r in result.layers for m in methods)
        convs = [r.layer for r in result.layers if isinstance(r.layer, ConvLayer)]
        min_oc = min((c.out_channels // c.groups for c in convs), default=0)
        if one_pixel and len(convs) == len(result.layers) and a.usable_cols <= min_oc:
            cells = (f" ({a.cols} columns / {a.slices} cells per {a.weight_bits}-bit weight in "
                     f"{a.cell_bits}-bit cells)" if a.slices > 1 else "")
            return (f"Note: {names} give identical cycles on every layer. C' = {a.usable_cols} usable "
                    f"columns{cells} is no more than any layer's output channels (fewest: {min_oc}), so "
                    f"one output pixel per activation already fills the column tiles and a larger "
                    f"output window needs proportionally more of them: every method maps as im2col.")
        return f"Note: {names} give identical cycles on every layer of this network on this array."
    groups = "; ".join(" = ".join(method_title(m) for m in ms) for ms in same)
    return f"Note: identical cycles on every layer: {groups}."


def mapping_table(result: NetworkMapping) -> str:
    """The compact report ``imcflow map`` prints: per layer its shape, the cycles of every method, the
    best method and its cycles / lower bound; then network totals, speedups and, where methods
    coincide, why (:func:`coincidence_note`). About 120 columns for the built-in networks."""
    methods = result.methods
    headers = ["layer", "shape (HxW KhxKwxICxOC)", *(method_title(m) for m in methods), "best",
               "cycles/LB"]
    rows = []
    for r in result.layers:
        b = r[r.best]
        rows.append([r.layer.name, _shape(r.layer), *(r[m].cycles for m in methods),
                     method_title(r.best), round(b.cycles_over_lb, 3)])
    parts = [render_table(headers, rows, _title(result) + "\ncycles (array activations) per method:")]
    parts += _totals(result)
    return "\n".join(parts)


def mapping_detail_table(result: NetworkMapping) -> str:
    """The full report (``imcflow map --detail``): per layer the cycles of every method, then for
    each method its window ``PWh x PWw x ICt x OCt``, tiles (row x col) and tile / average
    utilization; then the best method's MAC efficiency, LB and cycles/LB."""
    methods = result.methods
    headers = ["layer", "shape (HxW KhxKwxICxOC)"] + [f"{method_title(m)} cycles" for m in methods]
    for m in methods:
        t = method_title(m)
        headers += [f"{t} window", f"{t} tiles", f"{t} util tile/avg"]
    headers += ["best", "MAC eff", "LB", "cycles/LB"]
    rows = []
    for r in result.layers:
        row: list[Any] = [r.layer.name, _shape(r.layer)] + [r[m].cycles for m in methods]
        for m in methods:
            x = r[m]
            tiles = f"{x.row_tiles}x{x.col_tiles}"
            if x.groups_per_tile > 1:
                tiles += f"/{x.groups_per_tile}g"
            if x.groups > 1:
                tiles += f" x{-(-x.groups // x.groups_per_tile)}"
            row += [x.label, tiles, f"{x.tile_utilization:.1%}/{x.avg_utilization:.1%}"]
        b = r[r.best]
        row += [method_title(r.best), f"{b.mac_efficiency:.1%}", b.lower_bound, round(b.cycles_over_lb, 3)]
        rows.append(row)
    return "\n".join([render_table(headers, rows, _title(result)), *_totals(result)])


def _totals(result: NetworkMapping) -> list[str]:
    trows = []
    for m in (*result.methods, "best"):
        t = result.totals(m)
        trows.append([method_title(m), t.cycles, t.arrays, f"{t.mac_efficiency:.1%}", t.lower_bound,
                      round(t.cycles_over_lb, 3)])
    parts = [render_table(["method", "cycles", "arrays (preloaded)", "MAC eff", "LB", "cycles/LB"],
                          trows, "\nNetwork totals")]
    sp = result.speedups()
    if sp:
        parts.append("\nSpeedups (ratio of total cycles): " + ", ".join(
            "/".join(method_title(m) for m in k.split("/")) + f" = {v:.3f}x" for k, v in sp.items()))
    note = coincidence_note(result)
    if note:
        parts.append("\n" + note)
    return parts


def mapping_csv(result: NetworkMapping) -> str:
    return result.to_frame().to_csv(index=False)


def mapping_json(result: NetworkMapping) -> str:
    return dumps_json(result.to_dict())


FORMATTERS: Registry[Callable[[NetworkMapping], str]] = Registry(
    "mapping report format", {"table": mapping_table, "csv": mapping_csv, "json": mapping_json})
