"""Pruning baselines for the low-rank comparison (compression.md section A), matched to a target:
a parameter count (``target_params`` or ``keep``), or whole-network cycles (``target_cycles``) or
energy per inference (``target_energy_j``) under a named mapping (``match_mapping``: im2col, sdk,
vwsdk, flex or best). The summary of a run says what the match is on (``match``: kind, mapping,
target, value reached, value one bisection step further) and the cycles under every mapping.

* ``magnitude-prune``: unstructured; the smallest |w| of every layer low rank would decompose (every
  conv but the first; the classifier stays dense), one sparsity for all of them, chosen so that the
  model's non-zero parameters equal ``target_params`` (or ``keep`` x those layers' weights). Zeros are
  scattered, so a crossbar saves cycles only where a whole im2col row is zero (counted by the deployed
  report as ``zero_im2col_rows``); the mapped shapes, hence the cycles and the energy, do not change:
  matched on cycles or energy it stays dense (or the target is refused as unreachable).
* ``filter-prune``: structured; every prunable channel group (Torch-Pruning dependency groups, lowest
  L1 filters first, via :class:`imcflow.compress.graph.ChannelGraph`) keeps the same fraction f of
  its channels, with f the largest value whose model has at most the target: for parameters by
  bisection (``steps``) on pruned copies replayed from the graph, built once per apply; for cycles or
  energy of its layer list under ``match_mapping`` (torch-free) by scanning every fraction k/w at
  which some group's width changes, since SDK cycles are not monotone in the channel counts. Smaller
  layers map to fewer tiles, so cycles drop.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imcflow.compress.base import (
    CompressionContext,
    CompressionMethod,
    MethodOption,
    StepResult,
    TrainingHooks,
    register_method,
)
from imcflow.compress.lowrank import decomposable_layers, model_weights
from imcflow.errors import ConfigError, check_int
from imcflow.layers import Network
from imcflow.mapping import strategy_names


def _param_count(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _nonzero_count(model: Any) -> int:
    import torch

    total = 0
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            mask = getattr(m, "weight_mask", None)
            if name == "weight" and torch.is_tensor(mask):
                total += int((p.detach() * mask != 0).sum())
            else:
                total += p.numel()
    return total


def _target(model: Any, ctx: CompressionContext, layers: list[str]) -> int:
    target = int(ctx.options["target_params"])
    if target > 0:
        return target
    keep = float(ctx.options["keep"])
    if not 0.0 < keep <= 1.0:
        raise ConfigError(f"option keep must be in (0, 1], got {keep}")
    net = ctx.network
    prunable = sum(net.layer(n).weight_count for n in layers)
    return _param_count(model) - int(round((1.0 - keep) * prunable))


MATCH_MAPPINGS = ("im2col", "sdk", "vwsdk", "flex", "best")

_COMMON = (
    MethodOption("target_params", 0, "parameters of the pruned model (0: use keep or another target)",
                 minimum=0),
    MethodOption("keep", 0.5, "fraction of the prunable layers' weights kept when no target is given",
                 minimum=0, maximum=1),
    MethodOption("target_cycles", 0, "whole-network cycles under match_mapping the pruned model may "
                 "have at most (0: no cycle target)", minimum=0),
    MethodOption("target_energy_j", 0.0, "energy per inference (J, cost model with cost_preset) under "
                 "match_mapping the pruned model may have at most (0: no energy target)", minimum=0),
    MethodOption("match_mapping", "vwsdk", "mapping whose cycles or energy the targets refer to",
                 MATCH_MAPPINGS),
    MethodOption("cost_preset", "isaac", "hardware preset for target_energy_j"),
)


@dataclass(frozen=True)
class Match:
    """What a pruning baseline was matched on: ``kind`` (params, cycles or energy_j), the mapping
    (for cycles and energy), the target, the value reached (never above the target) and the value one
    bisection step further (above the target, or None when nothing had to be pruned)."""

    kind: str
    mapping: str | None
    target: float
    achieved: float
    next_step: float | None
    keep_fraction: float

    def to_dict(self) -> dict[str, Any]:
        return {"on": self.kind, "mapping": self.mapping, "target": self.target,
                "achieved": self.achieved, "next_step": self.next_step,
                "keep_fraction": self.keep_fraction}


def hardware_target(options: Mapping[str, Any]) -> tuple[str, float] | None:
    """``("cycles", N)`` or ``("energy_j", E)`` from the options, None when neither is set; both set
    is an error (a model is matched on one quantity)."""
    cycles, energy = int(options["target_cycles"]), float(options["target_energy_j"])
    if cycles < 0 or energy < 0:
        raise ConfigError(f"target_cycles and target_energy_j must be >= 0, got {cycles} and {energy}")
    if cycles and energy:
        raise ConfigError("give one of target_cycles and target_energy_j, not both")
    if int(options["target_params"]) and (cycles or energy):
        raise ConfigError("give one of target_params, target_cycles and target_energy_j, not several")
    if cycles:
        return "cycles", float(cycles)
    if energy:
        return "energy_j", energy
    return None


def network_measure(kind: str, ctx: CompressionContext) -> Callable[[Network], float]:
    """The function a layer list -> its cycles or energy (J) under ``match_mapping`` on the array."""
    from imcflow.mapping import map_network

    mapping = str(ctx.options["match_mapping"])
    methods = tuple(strategy_names()) if mapping == "best" else (mapping,)

    def cycles(net: Network) -> float:
        return float(map_network(net, ctx.array, methods, ctx.mapping).totals(mapping).cycles)

    def energy(net: Network) -> float:
        from imcflow.cost import CostSettings, cost_mapping
        from imcflow.hardware.preset import load_preset

        settings = CostSettings(load_preset(str(ctx.options["cost_preset"])))
        return float(cost_mapping(map_network(net, ctx.array, methods, ctx.mapping), mapping,
                                  settings).totals.energy_j)

    return cycles if kind == "cycles" else energy


def keep_candidates(widths: Sequence[int]) -> list[float]:
    """Every keep fraction k/w (k = 1..w) of every group width w, ascending: between two of them no
    group's channel count changes much, and each gives some group each of its possible widths.

    >>> keep_candidates([2, 4])
    [0.25, 0.5, 0.75, 1.0]
    """
    return sorted({k / w for w in widths for k in range(1, w + 1)})


def scan_keep(measure: Callable[[float], float], target: float, candidates: Sequence[float]
              ) -> tuple[float, float, float | None]:
    """The largest candidate keep fraction f whose ``measure(f) <= target``, scanning down from the
    largest: ``(f, measure(f), measure at the next larger candidate)``; exact where the measure is not
    monotone (SDK cycles can drop when a layer gains channels), unlike :func:`bisect_keep`.

    >>> scan_keep(lambda f: {0.25: 3, 0.5: 9, 0.75: 5, 1.0: 8}[f], 6, [0.25, 0.5, 0.75, 1.0])
    (0.75, 5, 8)
    """
    above: float | None = None
    for f in sorted(candidates, reverse=True):
        value = measure(f)
        if value <= target:
            return f, value, above
        above = value
    raise ConfigError(f"the target {target:g} is below what the smallest model reaches "
                      f"({above:g}); it cannot be matched")


def bisect_keep(measure: Callable[[float], float], target: float, steps: int
                ) -> tuple[float, float, float | None]:
    """The largest keep fraction f (to 2^-steps) whose ``measure(f) <= target``, for a measure that
    grows with f: ``(f, measure(f), measure(f + one step))``; f = 1 when nothing needs pruning.

    >>> bisect_keep(lambda f: round(100 * f), 37, 10)  # 100 f rounds to 37 up to f < 0.375
    (0.3740234375, 37, 38)
    """
    check_int("steps", steps, 1, 40)
    top = measure(1.0)
    if top <= target:
        return 1.0, top, None
    lo, hi = 0.0, 1.0
    at_lo, at_hi = measure(0.0), top
    if at_lo > target:
        raise ConfigError(f"the target {target:g} is below what the smallest model reaches "
                          f"({at_lo:g}); it cannot be matched")
    for _ in range(steps):
        mid = (lo + hi) / 2
        value = measure(mid)
        if value <= target:
            lo, at_lo = mid, value
        else:
            hi, at_hi = mid, value
    return lo, at_lo, at_hi


def every_mapping_cycles(network: Network, ctx: CompressionContext) -> dict[str, int]:
    """Whole-network cycles of ``network`` under every built-in mapping and ``best``."""
    from imcflow.mapping import map_network

    mapped = map_network(network, ctx.array, None, ctx.mapping)  # every registered strategy
    return {m: mapped.totals(m).cycles for m in (*mapped.methods, "best")}


class MagnitudePrune(CompressionMethod):
    name = "magnitude-prune"
    description = ("unstructured magnitude pruning to a parameter count (low-rank baseline; its "
                   "cycles do not depend on its sparsity)")
    changes = "masks"
    options = _COMMON

    def apply(self, model: Any, ctx: CompressionContext) -> StepResult:
        import torch

        from imcflow.compress.simple import apply_masks

        network, _ = model_weights(model, ctx.input_shape)
        layers = decomposable_layers(network)
        hw = hardware_target(ctx.options)
        if hw is not None:
            # Scattered zeros leave every mapped shape as it is: cycles and energy are the dense
            # model's at any sparsity, so the largest keep meeting the target is 1 (or none is).
            kind, goal = hw
            value = network_measure(kind, ctx)(ctx.network)
            mapping = str(ctx.options["match_mapping"])
            if value > goal:
                raise ConfigError(f"magnitude-prune: target_{kind}={goal:g} under "
                                  f"{mapping} is below the dense model's {value:g}; unstructured zeros "
                                  f"do not change the mapped shapes, so no sparsity reaches it "
                                  f"(use filter-prune, or target_params for an accuracy ceiling)")
            return StepResult(True, model, {
                "match": Match(kind, mapping, goal, value, None, 1.0).to_dict(),
                "note": "kept dense: cycles and energy do not depend on unstructured sparsity",
                "sparsity": 0.0, "nonzero_params": _nonzero_count(model),
                "cycles": every_mapping_cycles(ctx.network, ctx)})
        target = _target(model, ctx, layers)
        zeros = _param_count(model) - target
        modules = dict(model.named_modules())
        prunable = sum(modules[n].weight.numel() for n in layers)
        if not 0 <= zeros <= prunable:
            raise ConfigError(f"magnitude-prune: target_params={target} needs {zeros} zeros but the "
                              f"prunable layers hold {prunable} weights")
        sparsity = zeros / prunable
        zeroed = {}
        for n in layers:
            m = modules[n]
            k = int(round(sparsity * m.weight.numel()))
            mask = torch.ones_like(m.weight)
            mask.view(-1)[torch.argsort(m.weight.detach().abs().flatten(), stable=True)[:k]] = 0
            if hasattr(m, "set_mask"):
                m.set_mask(mask)  # quantized layers: mask applied after quantizing
            else:
                m.register_buffer("weight_mask", mask)
            zeroed[n] = k
        apply_masks(model)
        nonzero = _nonzero_count(model)
        return StepResult(True, model, {
            "match": Match("params", None, target, nonzero, None, 1.0 - sparsity).to_dict(),
            "target_params": target, "sparsity": sparsity, "zeroed": zeroed,
            "nonzero_params": nonzero, "cycles": every_mapping_cycles(ctx.network, ctx)})

    def hooks(self, model: Any, ctx: CompressionContext) -> TrainingHooks:
        from imcflow.compress.simple import apply_masks

        return TrainingHooks(after_step=apply_masks)


class FilterPrune(CompressionMethod):
    name = "filter-prune"
    description = ("L1 filter pruning, one keep fraction for every channel group, the largest one "
                   "within a parameter count, or within cycles or energy under a named mapping")
    changes = "channels"
    options = _COMMON + (MethodOption("steps", 14, "bisection steps on the keep fraction (parameter "
                                      "targets)", minimum=1),)

    def apply(self, model: Any, ctx: CompressionContext) -> StepResult:
        from imcflow.compress.graph import ChannelGraph
        from imcflow.compress.vwc_sdk import apply_widths

        graph = ChannelGraph.build(model, ctx.input_shape)  # one trace, one graph for the whole search
        every = graph.groups()
        groups = [g for g in every if g.prunable]

        def widths(f: float) -> dict[str, int]:
            return {g.name: max(1, int(round(f * g.width))) for g in groups}

        hw = hardware_target(ctx.options)
        measure: Callable[[float], float]
        if hw is None:
            kind, mapping = "params", None
            goal = float(_target(model, ctx, decomposable_layers(graph.network)))

            def measure(f: float) -> float:
                return float(_param_count(graph.pruned_copy(widths(f))))
        else:
            (kind, goal), mapping = hw, str(ctx.options["match_mapping"])
            of_network = network_measure(kind, ctx)

            def measure(f: float) -> float:  # torch-free: the layer list at those widths
                return of_network(apply_widths(graph.network, every, widths(f)))

        if hw is None:  # parameters grow with every channel: bisection on pruned copies
            f, achieved, next_step = bisect_keep(measure, goal, int(ctx.options["steps"]))
        else:  # torch-free and cheap, and cycles need not be monotone: scan every candidate
            f, achieved, next_step = scan_keep(measure, goal, keep_candidates([g.width for g in groups]))
        match = Match(kind, mapping, goal, achieved, next_step, f)
        if f >= 1.0:
            return StepResult(False, model, {"note": f"the model already meets {kind} <= {goal:g}",
                                             "match": match.to_dict()})
        chosen = widths(f)
        after = apply_widths(graph.network, every, chosen)
        graph.prune(chosen)
        return StepResult(True, model, {
            "match": match.to_dict(), "keep_fraction": f, "widths": chosen,
            "params": _param_count(model), "cycles": every_mapping_cycles(after, ctx)})


register_method(MagnitudePrune())
register_method(FilterPrune())
