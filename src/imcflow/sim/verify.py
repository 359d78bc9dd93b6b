"""Library-level verification: build every layer's tiles, run random integer data through them and
compare with ``torch.nn.functional.conv2d``; count activations against the plan's ``cycles``.

A layer passes when its output equals conv2d exactly, its activation count equals ``cycles * batch``
and the built tiles agree with the plan. Non-exact settings (a coarse ADC, noise) therefore fail with
the measured error, so the verifier is never a rubber stamp.
"""
from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch

from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer, Network, as_network
from imcflow.mapping import MappingOptions, map_layer, strategy_names
from imcflow.mapping.network import check_methods
from imcflow.seeding import check_seed
from imcflow.sim.effects import SimConfig
from imcflow.sim.executor import CrossbarLayer, SimCounters, reference_conv
from imcflow.sim.limits import DEFAULT_MAX_MEMORY_GIB, check_sim_memory
from imcflow.sim.tiles import build_tiles
from imcflow.validate import check_int, check_type

DEFAULT_INPUT_BITS = 8  # range of the random inputs when inputs are applied in one step


@dataclass(frozen=True)
class LayerCheck:
    """One layer under one mapping: counted vs planned activations, error, pass/fail."""

    layer: str
    method: str
    cycles: int
    batch: int
    activations: int
    max_abs_error: float
    max_abs_output: float
    plan_mismatches: tuple[str, ...]
    counters: SimCounters
    seconds: float

    @property
    def activations_ok(self) -> bool:
        return self.activations == self.cycles * self.batch

    @property
    def passed(self) -> bool:
        return self.activations_ok and self.max_abs_error == 0 and not self.plan_mismatches

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "method": self.method, "cycles": self.cycles, "batch": self.batch,
                "activations": self.activations, "activations_ok": self.activations_ok,
                "max_abs_error": self.max_abs_error, "max_abs_output": self.max_abs_output,
                "plan_mismatches": list(self.plan_mismatches), "passed": self.passed,
                "seconds": self.seconds, **{f"counter_{k}": v for k, v in self.counters.to_dict().items()}}


@dataclass(frozen=True)
class VerifyReport:
    """Every (layer, method) check of one network on one array."""

    network: str
    array: ArraySpec
    options: MappingOptions
    config: SimConfig
    checks: tuple[LayerCheck, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[LayerCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"network": self.network, "array": self.array.to_dict(),
                "options": {"geometry": self.options.geometry, "search": self.options.search},
                "config": self.config.to_dict(), "passed": self.passed, "seconds": self.seconds,
                "checks": [c.to_dict() for c in self.checks]}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([c.to_dict() for c in self.checks])


def random_layer_data(layer: ConvLayer, config: SimConfig, batch: int, seed: int,
                      geometry: str = "real") -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random integer weights (:meth:`SimConfig.random_weights`: the configured cells' full
    range, 4-bit signed for ideal cells, ``{-1, +1}`` for binary weights) and non-negative inputs
    (``input_bits``, else 8-bit), as float64."""
    gen = torch.Generator().manual_seed((seed * 7919 + zlib.crc32(layer.name.encode())) % (1 << 63))
    w = config.random_weights((layer.out_channels, layer.group_in_channels, layer.Kh, layer.Kw), gen)
    ib = config.input_bits or DEFAULT_INPUT_BITS
    h, w_in = cast("tuple[int, int]", layer.input_size)  # a pair once the layer is built
    x = torch.randint(0, 1 << ib, (batch, layer.in_channels, h, w_in), generator=gen)
    return w, x.double()


def verify_layer(layer: ConvLayer, array: ArraySpec, method: str, options: MappingOptions | None = None,
                 config: SimConfig | None = None, batch: int = 1, seed: int = 0,
                 max_memory_gib: float = DEFAULT_MAX_MEMORY_GIB) -> LayerCheck:
    """Build ``layer``'s tiles under ``method``, run random data, compare with conv2d.

    A layer whose simulation would need more than ``max_memory_gib`` (estimated from its plan, see
    :func:`~imcflow.sim.limits.sim_memory_bytes`) is refused before anything is allocated.

    >>> from imcflow.hardware import ArraySpec
    >>> c = verify_layer(ConvLayer("c", 4, 8, 3, input_size=6, padding=1), ArraySpec(16, 16), "sdk")
    >>> c.passed, c.activations == c.cycles
    (True, True)
    """
    _check_arguments(array, options, config, batch, seed, layer=layer)
    options = options or MappingOptions()
    config = config or SimConfig()
    t0 = time.perf_counter()
    plan = map_layer(layer, array, method, options)
    check_sim_memory(layer, plan, batch, max_memory_gib)
    w, x = random_layer_data(layer, config, batch, config.seed if seed is None else seed, options.geometry)
    tiles = build_tiles(layer, w, array, method, options, plan=plan)
    res = CrossbarLayer(tiles, config).run(x)
    ref = reference_conv(layer, w, x, options.geometry)
    err = float((res.output - ref).abs().max()) if ref.numel() else 0.0
    return LayerCheck(layer.name, method, plan.cycles, batch, res.counters.activations, err,
                      float(ref.abs().max()) if ref.numel() else 0.0, tiles.plan_mismatches,
                      res.counters, time.perf_counter() - t0)


def verify_network(network: Network | Sequence[ConvLayer], array: ArraySpec,
                   methods: Iterable[str] | None = None, options: MappingOptions | None = None,
                   config: SimConfig | None = None, batch: int = 1, seed: int = 0,
                   max_memory_gib: float = DEFAULT_MAX_MEMORY_GIB) -> VerifyReport:
    """:func:`verify_layer` for every layer and method of a network; every layer's memory estimate
    is checked against ``max_memory_gib`` before the first one runs."""
    network = as_network(network)
    _check_arguments(array, options, config, batch, seed)
    options = options or MappingOptions(geometry=network.geometry)  # type: ignore[arg-type]
    config = config or SimConfig()
    asked = check_methods(strategy_names() if methods is None else methods)  # default: every strategy
    chosen = [m if isinstance(m, str) else m.name for m in dict.fromkeys(asked)]
    for layer in network.layers:
        for m in chosen:
            if isinstance(layer, ConvLayer):  # other records are refused by verify_layer, by name
                check_sim_memory(layer, map_layer(layer, array, m, options), batch, max_memory_gib)
    checks = tuple(verify_layer(layer, array, m, options, config, batch, seed,  # type: ignore[arg-type]
                                max_memory_gib)  # verify_layer refuses a composite record by name
                   for layer in network.layers for m in chosen)
    return VerifyReport(network.name, array, options, config, checks)


def _check_arguments(array: object, options: object, config: object, batch: object, seed: object,
                     layer: object = None) -> None:
    if layer is not None:
        check_type("layer", layer, ConvLayer)
    check_type("array", array, ArraySpec, hint="build one with parse_array('64x64') or ArraySpec(64, 64)")
    if options is not None:
        check_type("options", options, MappingOptions)
    if config is not None:
        check_type("config", config, SimConfig).check_array(array)
    check_int("batch", batch, 1)
    if seed is not None:
        check_seed(seed)
