"""``imcflow chip``: a network on a NeuroSim-style chip (floor plan, buffers, interconnect, leakage),
optionally beside a real NeuroSim log of the same run."""
from __future__ import annotations

import argparse
import json

from imcflow.cli_commands import _common as c
from imcflow.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chip", help="latency, energy and area on a NeuroSim-calibrated chip model",
                       description="Cost MODEL's NetWork.csv rows on a NeuroSim-style chip: NeuroSim's "
                                   "floor plan and weight duplication, arrays and ADCs, buffers, global "
                                   "bus and leakage, with constants cited in the chip model file. "
                                   "--compare LOG puts a NeuroSim console log of the same run beside it.")
    c.add_network_arguments(p)
    c.add_output_arguments(p)
    p.add_argument("--chip", default="neurosim-sram22", metavar="NAME",
                   help="chip model: neurosim-sram22 (default), neurosim-rram22 or a YAML file")
    p.add_argument("--padding", choices=("neurosim", "padded"), default="neurosim",
                   help="NetWork.csv size convention of the rows costed (default neurosim)")
    p.add_argument("--layer-by-layer", action="store_true",
                   help="NeuroSim's pipeline = false (default: pipelined, speedUpDegree 8)")
    p.add_argument("--weight-bits", type=int, default=8)
    p.add_argument("--input-bits", type=int, default=8)
    p.add_argument("--density", type=float, default=None,
                   help="input bit density of every layer (default: the chip model's reference)")
    p.add_argument("--trace-summary", metavar="JSON",
                   help="per-layer input bit densities from 'imcflow export --traces' (trace_summary.json)")
    p.add_argument("--compare", metavar="LOG", help="a NeuroSim console log of the same network and mode")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from imcflow.cost.periphery import estimate_chip
    from imcflow.frontends.neurosim import neurosim_rows, real_ops
    from imcflow.report.table import render_table

    network = c.network_from_args(args)
    export = neurosim_rows(network, args.padding)
    density = args.density
    if args.trace_summary:
        if density is not None:
            raise ConfigError("give --density or --trace-summary, not both")
        try:
            with open(args.trace_summary, encoding="utf-8") as fh:
                summary = json.load(fh)
            density = [l.get("batch_input_bit_density", l["input_bit_density"]) for l in summary["layers"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"--trace-summary {args.trace_summary}: not a trace summary ({exc})") from None
    cost = estimate_chip([r.values for r in export.rows], args.chip, not args.layer_by_layer,
                         args.input_bits, args.weight_bits, input_density=density,
                         real_ops=real_ops(network))
    if args.compare:
        from imcflow.frontends.neurosim_log import read_neurosim_log
        from imcflow.report.neurosim_compare import TABLE_HEADERS, compare_with_log

        cmp = compare_with_log(cost, read_neurosim_log(args.compare))
        if args.format == "json":
            text = c.to_json(cmp.to_dict())
        elif args.format == "csv":
            text = cmp.to_frame().to_csv(index=False)
        else:
            text = (render_table(TABLE_HEADERS, cmp.table_rows(),
                                 f"{network.name} on {cost.model} vs NeuroSim "
                                 f"({'pipelined' if cost.pipelined else 'layer by layer'})")
                    + f"\narea {cmp.area_mm2:.2f} mm2 vs NeuroSim {cmp.neurosim_area_mm2:.2f} mm2 "
                      f"(ratio {cmp.area_ratio:.3f}); worst layer ratio {cmp.worst_layer_ratio:.3f}")
        c.emit(text, args.out)
        return 0
    mode = "pipelined" if cost.pipelined else "layer by layer"
    if args.format == "json":
        text = c.to_json(cost.to_dict())
    elif args.format == "csv":
        text = cost.to_frame().to_csv(index=False)
    else:
        rows = [[l.index + 1, l.placement.tiles, l.placement.speed_up, l.latency_s * 1e6,
                 l.latency_breakdown_s["buffer"] * 1e6, l.latency_breakdown_s["interconnect"] * 1e6,
                 l.energy_j * 1e6, l.leakage_energy_j * 1e6] for l in cost.layers]
        text = (render_table(["layer", "tiles", "speed-up", "latency us", "buffer us", "bus us", "energy uJ",
                              "leakage uJ"], rows,
                             f"{network.name} on {cost.model} ({mode})")
                + f"\nper image: {cost.latency_s * 1e6:.2f} us, {cost.energy_j * 1e6:.2f} uJ dynamic + "
                  f"{cost.leakage_energy_j * 1e6:.3f} uJ leakage, {cost.area_mm2:.2f} mm2; operations: "
                  f"{cost.neurosim_ops / 1e9:.4g} G NeuroSim's count, "
                  f"{(cost.real_ops or 0) / 1e9:.4g} G real "
                  f"(2 x MACs); {cost.tops_per_w():.2f} TOPS/W as NeuroSim counts, "
                  f"{cost.tops_per_w('real'):.2f} real")
    c.emit(text, args.out)
    return 0
