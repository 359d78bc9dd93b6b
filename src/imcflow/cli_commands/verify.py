"""``imcflow verify``: build every layer's crossbar tiles, run random integer data, compare with conv2d."""
from __future__ import annotations

import argparse
from typing import Literal

from imcflow.cli_commands import _common as c


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="simulate every layer's crossbar tiles and check them against conv2d",
                       description="Build the tiles of every conv/linear layer under each mapping, run "
                                   "seeded random integer weights and inputs through them and compare "
                                   "with torch conv2d: activations counted vs the plan's cycles, max abs "
                                   "error, pass/fail. Exit code 1 if any layer fails (including settings "
                                   "that are not exact: few ADC bits, noise).")
    c.add_network_arguments(p)
    c.add_array_arguments(p)
    c.add_mapping_arguments(p)
    p.add_argument("--input-bits", type=int, default=None,
                   help="bit-serial inputs of this many bits (default: one step; inputs are 8-bit)")
    p.add_argument("--adc-bits", type=int, default=None,
                   help="ADC resolution per column read (default: ideal, enough bits to be exact)")
    p.add_argument("--adc-full-scale", default="max",
                   help="'max' (largest possible column value), 'calibrated' (from the data) or a number")
    p.add_argument("--signed", choices=("offset", "differential"), default="offset",
                   help="signed weights: offset column (default) or differential pair")
    p.add_argument("--sigma", type=float, default=0.0, help="relative conductance variation (Gaussian)")
    p.add_argument("--stuck-on", type=float, default=0.0, help="stuck-at-on cell rate")
    p.add_argument("--stuck-off", type=float, default=0.0, help="stuck-at-off cell rate")
    p.add_argument("--read-sigma", type=float, default=0.0,
                   help="read noise per column read (Gaussian, in cell levels x input units; default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random data and the noise")
    p.add_argument("--batch", type=int, default=1, help="images per layer (default 1)")
    p.add_argument("--max-memory-gib", type=float, default=None, metavar="GIB",
                   help="refuse a layer whose simulation needs more memory than this, estimated before "
                        "anything is allocated (default: 4)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: verify runs many small products, for which one "
                        "thread is fastest, and several threads stall badly on a busy machine)")
    c.add_output_arguments(p, ("table", "csv", "json"))
    p.set_defaults(handler=run)
    c.declare_outputs(p, c.file_out)


def config_from_args(args: argparse.Namespace):
    from imcflow.errors import ConfigError
    from imcflow.sim.effects import AdcSpec, NoiseSpec, SimConfig

    adc = None
    if args.adc_bits is not None:
        fs: Literal["max", "calibrated"] | float
        if args.adc_full_scale in ("max", "calibrated"):
            fs = args.adc_full_scale
        else:
            try:
                fs = float(args.adc_full_scale)
            except ValueError:
                raise ConfigError(f"--adc-full-scale must be max, calibrated or a number, "
                                  f"got {args.adc_full_scale!r}") from None
        adc = AdcSpec(args.adc_bits, full_scale=fs)
    noise = NoiseSpec(args.sigma, args.stuck_on, args.stuck_off, read_sigma=args.read_sigma)
    return SimConfig(weight_bits=args.weight_bits, cell_bits=args.cell_bits, signed=args.signed,
                     input_bits=args.input_bits, adc=adc, noise=noise if noise.active else None,
                     seed=args.seed)


def run(args: argparse.Namespace) -> int:
    import torch

    from imcflow.errors import check_int
    from imcflow.report.table import render_table
    from imcflow.sim.verify import verify_network

    torch.set_num_threads(check_int("--threads", args.threads, 1))
    network = c.network_from_args(args)
    array = c.array_from_args(args)
    config = config_from_args(args)
    report = verify_network(network, array, c.methods_from_args(args), c.options_from_args(args, network),
                            config, batch=check_int("--batch", args.batch, 1), seed=args.seed,
                            **({} if args.max_memory_gib is None
                               else {"max_memory_gib": args.max_memory_gib}))
    if args.format == "json":
        text = c.to_json(report.to_dict())
    elif args.format == "csv":
        text = report.to_frame().to_csv(index=False)
    else:
        rows = [[k.layer, k.method, k.cycles * k.batch, k.activations, k.max_abs_error,
                 "pass" if k.passed else "FAIL" + (f" ({'; '.join(k.plan_mismatches)})"
                                                   if k.plan_mismatches else "")]
                for k in report.checks]
        title = (f"{network.name} on {array.label} ({report.options.geometry} geometry), "
                 f"{len(report.checks)} checks, {report.seconds:.1f} s")
        summary = (f"{'PASS' if report.passed else 'FAIL'}: {len(report.checks) - len(report.failures)}"
                   f"/{len(report.checks)} layer checks exact with activations == cycles")
        text = render_table(["layer", "method", "cycles", "activations", "max_abs_error", "result"],
                            rows, title) + "\n" + summary
    c.emit(text, args.out)
    return 0 if report.passed else 1
