"""PNG plots of cost results (matplotlib, Agg backend, imported only when a plot is drawn)."""
from __future__ import annotations

import os
from collections.abc import Mapping

from imcflow.cost.results import NetworkCost
from imcflow.io import atomic_writer, make_output_dir


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    with atomic_writer(path) as fh:
        fig.savefig(fh, format="png", dpi=120)
    _pyplot().close(fig)


def plot_energy_breakdown(cost: NetworkCost, path: str) -> str:
    """Stacked bars: energy of every layer split by component. Returns ``path``."""
    plt = _pyplot()
    names = [l.layer for l in cost.layers]
    comps = list(cost.layers[0].energy_breakdown_j)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(names) + 3), 4.5))
    bottom = [0.0] * len(names)
    for comp in comps:
        vals = [l.energy_breakdown_j[comp] * 1e6 for l in cost.layers]
        if not any(vals):
            continue
        ax.bar(range(len(names)), vals, bottom=bottom, label=comp)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=70, fontsize=7)
    ax.set_ylabel("energy (uJ)")
    ax.set_title(f"{cost.network}: energy per layer ({cost.method}, {cost.preset}, {cost.array})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return path


def plot_methods(costs: Mapping[str, NetworkCost], path: str, note: str | None = None) -> str:
    """Two panels: total cycles and total energy per mapping method, with ``note`` (why methods
    coincide, :func:`~imcflow.report.mapping_report.coincidence_note`) under them. Returns ``path``."""
    plt = _pyplot()
    methods = list(costs)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    ax1.bar(methods, [costs[m].cycles for m in methods], color="tab:blue")
    ax1.set_ylabel("cycles (array activations)")
    ax2.bar(methods, [costs[m].totals.energy_j * 1e6 for m in methods], color="tab:orange")
    ax2.set_ylabel("energy (uJ)")
    fig.suptitle(methods_plot_title(costs, note))
    if note:
        import textwrap

        fig.text(0.5, 0.01, textwrap.fill(note, 130), ha="center", va="bottom", fontsize=7)
        fig.tight_layout(rect=(0, 0.12, 1, 1))
    else:
        fig.tight_layout()
    _save(fig, path)
    return path


def methods_plot_title(costs: Mapping[str, NetworkCost], note: str | None = None) -> str:
    """The title of the methods plot; it says when the bars are identical (see ``note``)."""
    first = next(iter(costs.values()))
    title = f"{first.network} on {first.array}, preset {first.preset}: cycles vs energy"
    if note and len({nc.cycles for nc in costs.values()}) == 1:
        title += "\n(every method maps as im2col here: identical bars, see the note below)" \
            if "maps as im2col" in note else "\n(identical cycles for every method, see the note below)"
    return title


def write_cost_plots(costs: Mapping[str, NetworkCost], all_methods: Mapping[str, NetworkCost],
                     directory: str, note: str | None = None) -> list[str]:
    """Write ``energy_breakdown_<method>.png`` per costed method and ``methods.png`` into directory."""
    make_output_dir(directory, "--plot")
    paths = [plot_energy_breakdown(nc, os.path.join(directory, f"energy_breakdown_{m}.png"))
             for m, nc in costs.items()]
    paths.append(plot_methods(all_methods, os.path.join(directory, "methods.png"), note))
    return paths
