"""Plots of a sweep's results table and one self-contained HTML page that shows them.

Figures (matplotlib, Agg backend, PNG): Pareto fronts (accuracy against cycles, energy and area when
the table has trained points; energy against cycles otherwise), per-layer cycles and energy of one
configuration under every mapping of the table, utilization heatmaps over the array sizes, and the
crossbar layout of one small layer under every built-in strategy, drawn from the simulator's tiles
(:func:`imcflow.sim.tiles.build_tiles`), which know the weight, kernel copy and input pixel of every
cell. The page embeds the PNGs as base64 ``data:`` URIs, so it needs no other file and no network.
"""
from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from imcflow.errors import ConfigError
from imcflow.report.plots import _pyplot

BUILTIN = ("im2col", "sdk", "vwsdk", "flex")


@dataclass(frozen=True)
class Figure:
    """One rendered plot: a file-name stem, a title, a caption and the PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes


def load_results(path: str):
    """A sweep's table from ``results.parquet``, ``results.csv`` or the sweep's output folder."""
    import pandas as pd

    if os.path.isdir(path):
        for name in ("results.parquet", "results.csv"):
            if os.path.isfile(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
        else:
            raise ConfigError(f"{path} has no results.parquet or results.csv (run 'imcflow sweep' first)")
    if not os.path.isfile(path):
        raise ConfigError(f"results {path!r} is not a file")
    frame = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    missing = {"model", "array", "mapping", "cycles", "energy_j"} - set(frame.columns)
    if missing:
        raise ConfigError(f"{path} is not a sweep results table: no column(s) {', '.join(sorted(missing))}")
    if frame.empty:
        raise ConfigError(f"{path} has no rows")
    return frame


def _png(fig) -> bytes:
    fh = io.BytesIO()  # in memory: the page embeds the bytes, write_plots writes them atomically
    fig.savefig(fh, format="png", dpi=100)
    _pyplot().close(fig)
    return fh.getvalue()


def pareto_mask(x: np.ndarray, y: np.ndarray, maximize_y: bool = False) -> np.ndarray:
    """Points no other point beats on both: lower ``x`` and lower (or, with ``maximize_y``, higher) y.

    >>> pareto_mask(np.array([1, 2, 3]), np.array([3, 1, 2])).tolist()
    [True, True, False]
    """
    yy = -y if maximize_y else y
    order = np.lexsort((yy, x))
    keep = np.zeros(len(x), dtype=bool)
    best = np.inf
    for i in order:
        if yy[i] < best:
            keep[i], best = True, yy[i]
    return keep


def _colors(values: Sequence[str]) -> dict[str, Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    return {v: cmap(i % 10) for i, v in enumerate(values)}


def pareto_figure(frame) -> Figure:
    plt = _pyplot()
    mappings = list(dict.fromkeys(frame["mapping"]))
    colors = _colors(mappings)
    trained = frame[frame["accuracy"].notna()] if "accuracy" in frame else frame.iloc[:0]
    if len(trained):
        axes_spec = [("cycles", "cycles"), ("energy_j", "energy (J)"), ("area_mm2", "area (mm²)")]
        fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
        for ax, (col, label) in zip(axes, axes_spec, strict=True):
            data = trained[trained[col].notna()]
            for m in mappings:
                d = data[data["mapping"] == m]
                ax.scatter(d[col], d["accuracy"], s=22, color=colors[m], label=m, alpha=0.8)
            if len(data):
                keep = pareto_mask(data[col].to_numpy(float), data["accuracy"].to_numpy(float), True)
                front = data[keep].sort_values(col)
                ax.step(front[col], front["accuracy"], where="post", color="black", lw=1.2,
                        label="Pareto front")
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("top-1 accuracy")
        axes[0].legend(fontsize=7)
        title = "Pareto fronts: accuracy against cycles, energy and area"
        caption = f"{len(trained)} trained points; the black line joins the points no other beats."
    else:
        models = list(dict.fromkeys(frame["model"]))
        fig, axes = plt.subplots(1, len(models), figsize=(1.5 + 5.5 * len(models), 4.6), squeeze=False)
        fronts = 0
        for ax, model in zip(axes[0], models, strict=True):
            data = frame[frame["model"] == model]
            for m in mappings:
                d = data[data["mapping"] == m]
                ax.scatter(d["cycles"], d["energy_j"], s=14, color=colors[m], label=m, alpha=0.7)
            keep = pareto_mask(data["cycles"].to_numpy(float), data["energy_j"].to_numpy(float))
            fronts += int(keep.sum())
            front = data[keep].sort_values("cycles")
            ax.step(front["cycles"], front["energy_j"], where="post", color="black", lw=1.2,
                    label="Pareto front")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("cycles (array activations)")
            ax.set_ylabel("energy (J)")
            ax.set_title(model, fontsize=9)
        axes[0][0].legend(fontsize=7)
        title = "Pareto front: energy against cycles"
        caption = (f"{len(frame)} analytic points (no trained points, so no accuracy), one panel per "
                   f"model; the black lines join the {fronts} points no other point of the same model "
                   f"beats on both.")
    fig.suptitle(title)
    fig.tight_layout()
    return Figure("pareto", title, caption, _png(fig))


def _reference_row(frame):
    """The configuration the per-layer plot shows: the most frequent analytic one (first in order)."""
    cols = ["model", "array", "cell_bits", "weight_bits", "preset", "adc_bits", "input_bits", "mode",
            "geometry"]
    rows = frame[frame["kind"] == "analytic"] if "kind" in frame else frame
    rows = rows if len(rows) else frame
    counts = rows.groupby(cols, sort=False).size()
    return dict(zip(cols, counts.idxmax(), strict=True))


def per_layer_figure(frame) -> Figure:
    from imcflow.cost import CostSettings, cost_mapping
    from imcflow.hardware.array import ArraySpec, parse_array
    from imcflow.hardware.preset import load_preset
    from imcflow.mapping import MappingOptions, map_network
    from imcflow.mapping.base import Geometry
    from imcflow.mapping.objective import is_objective_name, objective_strategy
    from imcflow.networks import load_network

    ref = _reference_row(frame)
    shape = parse_array(str(ref["array"]))
    array = ArraySpec(shape.rows, shape.cols, cell_bits=int(ref["cell_bits"]),
                      weight_bits=int(ref["weight_bits"]))
    settings = CostSettings(load_preset(str(ref["preset"]), [f"adc.bits={int(ref['adc_bits'])}"]),
                            str(ref["mode"]), int(ref["input_bits"]))
    names = list(dict.fromkeys(frame["mapping"]))
    methods = [objective_strategy(m, settings) if is_objective_name(m) else m for m in names]
    network = load_network(str(ref["model"]))
    options = MappingOptions(geometry=cast(Geometry, str(ref["geometry"])))
    mapping = map_network(network, array, methods, options)
    costs = {m: cost_mapping(mapping, m, settings) for m in mapping.methods}
    layers = [r.layer.name for r in mapping.layers]
    plt = _pyplot()
    colors = _colors(names)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8.0, 0.32 * len(layers) * len(names) / 2 + 3), 7),
                                   sharex=True)
    width = 0.8 / len(names)
    x = np.arange(len(layers))
    for k, m in enumerate(mapping.methods):
        ax1.bar(x + k * width, [r.mappings[m].cycles for r in mapping.layers], width, color=colors[m],
                label=m)
        ax2.bar(x + k * width, [l.energy_j * 1e6 for l in costs[m].layers], width, color=colors[m])
    ax1.set_yscale("log")
    ax1.set_ylabel("cycles")
    ax2.set_ylabel("energy (µJ)")
    ax2.set_xticks(x + 0.4 - width / 2)
    ax2.set_xticklabels(layers, rotation=75, fontsize=7)
    ax1.legend(fontsize=7, ncol=len(names))
    label = (f"{ref['model']} on {ref['array']} ({ref['weight_bits']}-bit weights in {ref['cell_bits']}-bit "
             f"cells), {ref['preset']} ADC {ref['adc_bits']} bits, {ref['input_bits']}-bit inputs")
    fig.suptitle(f"Per layer: {label}", fontsize=10)
    fig.tight_layout()
    return Figure("per_layer", "Per-layer cycles and energy", label + ", every mapping of the sweep.",
                  _png(fig))


def utilization_figure(frame) -> Figure:
    """Mean utilization (weights placed / cells of the arrays holding them) per mapping over the
    array's rows x columns, averaged over every other axis."""
    plt = _pyplot()
    names = list(dict.fromkeys(frame["mapping"]))
    rows = sorted(frame["rows"].unique())
    cols = sorted(frame["cols"].unique())
    n = len(names)
    fig, axes = plt.subplots(1, n, figsize=(2.2 + 2.6 * n, 3.3), squeeze=False)
    for ax, m in zip(axes[0], names, strict=True):
        grid = (frame[frame["mapping"] == m].pivot_table(index="rows", columns="cols",
                                                          values="utilization", aggfunc="mean")
                .reindex(index=rows, columns=cols))
        im = ax.imshow(grid.to_numpy(float), vmin=0, vmax=1, cmap="viridis", origin="lower")
        for (i, j), v in np.ndenumerate(grid.to_numpy(float)):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=7,
                        color="white" if v < 0.6 else "black")
        ax.set_xticks(range(len(cols)), [str(c) for c in cols], fontsize=7)
        ax.set_yticks(range(len(rows)), [str(r) for r in rows], fontsize=7)
        ax.set_xlabel("columns")
        ax.set_title(m, fontsize=9)
    axes[0][0].set_ylabel("rows")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="utilization")
    fig.suptitle("Array utilization over array sizes")
    return Figure("utilization", "Utilization over array sizes",
                  "Average utilization of the arrays holding the network, averaged over the other axes "
                  "of the sweep; blank where the sweep has no such array.", _png(fig))


def crossbar_figure(layer_spec: str = "5,5,3,3,2,2", array: str = "32x8",
                    methods: Sequence[str] = BUILTIN) -> Figure:
    """Tile (0, 0) of one layer under each strategy: every cell's kernel copy (colour), and which
    weight it holds (output channel o, input channel c, tap i,j)."""
    import torch

    from imcflow.hardware.array import parse_array
    from imcflow.layers import parse_layer_spec
    from imcflow.mapping import MappingOptions
    from imcflow.sim.tiles import build_tiles

    layer = parse_layer_spec(layer_spec, name="layer")
    arr = parse_array(array)
    oc, icg, kh, kw = layer.out_channels, layer.group_in_channels, layer.Kh, layer.Kw
    # Weight value = 1 + flat index (o, c, i, j): a cell's value says exactly which weight it holds.
    weight = torch.arange(1, oc * icg * kh * kw + 1, dtype=torch.float64).reshape(oc, icg, kh, kw)
    plt = _pyplot()
    tiles = [build_tiles(layer, weight, arr, m, MappingOptions()) for m in methods]
    widest = max(t.tile(0, 0, 0).shape[1] for t in tiles)
    tallest = max(t.tile(0, 0, 0).shape[0] for t in tiles)
    fig, axes = plt.subplots(1, len(methods), figsize=(1.6 + len(methods) * (0.55 * widest + 1.4),
                                                       0.24 * tallest + 2.2), squeeze=False)
    cmap = plt.get_cmap("tab20")
    for ax, m, lt in zip(axes[0], methods, tiles, strict=True):
        tile = lt.tile(0, 0, 0)
        r, c = tile.shape
        copy = (tile.col_wy * lt.geo.b + tile.col_wx)  # the kernel copy (output offset) of a column
        img = np.ones((r, c, 4))
        for (i, j), v in np.ndenumerate(tile.weights):
            if v:
                img[i, j] = cmap(int(copy[j]) % 20)
        ax.imshow(img, aspect="auto", interpolation="nearest")
        for (i, j), v in np.ndenumerate(tile.weights):
            if v:
                o, rest = divmod(int(v) - 1, icg * kh * kw)
                ch, tap = divmod(rest, kh * kw)
                ax.text(j, i, f"o{o} c{ch} {tap // kw},{tap % kw}", ha="center", va="center", fontsize=5)
        ax.set_xticks(range(c), [f"o{o}\n({wy},{wx})" for o, wy, wx in
                                 zip(tile.col_channel, tile.col_wy, tile.col_wx, strict=True)], fontsize=6)
        ax.set_yticks(range(r), [f"c{ch} ({y},{x})" for ch, y, x in
                                 zip(tile.row_channel, tile.row_y, tile.row_x, strict=True)], fontsize=5)
        ax.set_xticks(np.arange(-0.5, c), minor=True)
        ax.set_yticks(np.arange(-0.5, r), minor=True)
        ax.grid(which="minor", color="0.8", lw=0.4)
        ax.tick_params(which="minor", length=0)
        p = lt.plan
        ax.set_title(f"{m}: window {p.window.a}x{p.window.b}, {p.label}\n{p.cycles} cycles, "
                     f"{p.arrays} tile(s), tile 0 is {r}x{c}", fontsize=8)
    fig.suptitle(f"Crossbar layout of layer {layer_spec} (H,W,Kh,Kw,IC,OC) on a {arr.label} array: "
                 f"colour = kernel copy, text = weight o/c/tap", fontsize=9)
    fig.tight_layout()
    return Figure("crossbar_layout", "Crossbar layout of one layer",
                  "First tile of each strategy: rows are (input channel, input pixel of the window), "
                  "columns (output channel, output offset); each coloured cell names the weight it "
                  "holds, and the colour is its kernel copy.", _png(fig))


def sweep_figures(frame, layout_layer: str = "5,5,3,3,2,2", layout_array: str = "32x8") -> list[Figure]:
    return [pareto_figure(frame), per_layer_figure(frame), utilization_figure(frame),
            crossbar_figure(layout_layer, layout_array)]


def write_plots(figures: Sequence[Figure], directory: str) -> list[str]:
    from imcflow.io import atomic_write_bytes, make_output_dir

    make_output_dir(directory, "--plot")
    paths = []
    for f in figures:
        path = os.path.join(directory, f"{f.name}.png")
        atomic_write_bytes(path, f.png)
        paths.append(path)
    return paths


def _summary_table(frame) -> str:
    best = []
    for col, label in (("cycles", "fewest cycles"), ("energy_j", "least energy"),
                       ("edp_js", "least EDP"), ("area_mm2", "least area")):
        if col in frame and frame[col].notna().any():
            r = frame.loc[frame[col].idxmin()]
            best.append((label, r))
    if "accuracy" in frame and frame["accuracy"].notna().any():
        best.append(("best accuracy", frame.loc[frame["accuracy"].idxmax()]))
    head = ["", "model", "array", "cell bits", "ADC bits", "mapping", "compression", "cycles",
            "energy (J)", "area (mm²)", "accuracy"]
    rows = []
    for label, r in best:
        acc, area = r.get("accuracy"), r.get("area_mm2")
        vals = [label, r["model"], r["array"], r["cell_bits"], r["adc_bits"], r["mapping"],
                r.get("compression", "none"), f"{int(r['cycles']):,}", f"{r['energy_j']:.4g}",
                "-" if area is None or area != area else f"{area:.4g}",
                "-" if acc is None or acc != acc else f"{acc:.3f}"]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in vals) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def render_html(frame, figures: Sequence[Figure], title: str = "imcflow sweep report") -> str:
    """One page: a summary, the best points, and every figure embedded as a base64 PNG."""
    axes = {c: sorted(map(str, frame[c].unique())) for c in ("model", "array", "mapping")
            if c in frame}
    facts = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(', '.join(v))}</li>" for k, v in axes.items())
    sections = []
    for f in figures:
        data = base64.b64encode(f.png).decode()
        sections.append(f'<section id="{f.name}"><h2>{html.escape(f.title)}</h2>'
                        f'<img class="plot" alt="{html.escape(f.title)}" src="data:image/png;base64,{data}">'
                        f"<p>{html.escape(f.caption)}</p></section>")
    style = ("body{font-family:sans-serif;margin:24px;max-width:1400px}img.plot{max-width:100%;"
             "border:1px solid #ddd}table{border-collapse:collapse;font-size:13px}td,th{border:1px "
             "solid #ccc;padding:3px 8px}th{background:#f3f3f3}")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{len(frame)} points.</p><ul>{facts}</ul><h2>Best points</h2>{_summary_table(frame)}"
            + "".join(sections) + "</body></html>\n")
