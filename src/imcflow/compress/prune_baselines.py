"""Pruning baselines for the low-rank comparison (compression.md section A), at a given parameter count:

* ``magnitude-prune``: unstructured; the smallest |w| of every layer low rank would decompose (every
  conv but the first; the classifier stays dense), one sparsity for all of them, chosen so that the
  model's non-zero parameters equal ``target_params`` (or ``keep`` x those layers' weights). Zeros are
  scattered, so a crossbar saves cycles only where a whole im2col row is zero (counted by the deployed
  report as ``zero_im2col_rows``); the mapped shapes, hence the cycles, do not change.
* ``filter-prune``: structured; every prunable channel group (Torch-Pruning dependency groups, lowest
  L1 filters first, via :class:`imcflow.compress.graph.ChannelGraph`) keeps the same fraction f of
  its channels, with f the largest value (bisection) whose model has at most ``target_params``
  parameters. The dependency graph is built once per apply; every trial of the bisection is a pruned
  copy replayed from it. Smaller layers map to fewer tiles, so cycles drop.
"""
from __future__ import annotations

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
from imcflow.errors import ConfigError


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


_COMMON = (
    MethodOption("target_params", 0, "parameters of the pruned model (0: use keep)", minimum=0),
    MethodOption("keep", 0.5, "fraction of the prunable layers' weights kept when target_params=0",
                 minimum=0, maximum=1),
)


class MagnitudePrune(CompressionMethod):
    name = "magnitude-prune"
    description = "unstructured magnitude pruning to a parameter count (low-rank baseline)"
    changes = "masks"
    options = _COMMON

    def apply(self, model: Any, ctx: CompressionContext) -> StepResult:
        import torch

        from imcflow.compress.simple import apply_masks

        network, _ = model_weights(model, ctx.input_shape)
        layers = decomposable_layers(network)
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
        return StepResult(True, model, {"target_params": target, "sparsity": sparsity,
                                        "zeroed": zeroed, "nonzero_params": _nonzero_count(model)})

    def hooks(self, model: Any, ctx: CompressionContext) -> TrainingHooks:
        from imcflow.compress.simple import apply_masks

        return TrainingHooks(after_step=apply_masks)


class FilterPrune(CompressionMethod):
    name = "filter-prune"
    description = "L1 filter pruning, one keep fraction for every channel group, to a parameter count"
    changes = "channels"
    options = _COMMON + (MethodOption("steps", 14, "bisection steps on the keep fraction", minimum=1),)

    def apply(self, model: Any, ctx: CompressionContext) -> StepResult:
        from imcflow.compress.graph import ChannelGraph

        graph = ChannelGraph.build(model, ctx.input_shape)  # one trace, one graph for the whole search
        target = _target(model, ctx, decomposable_layers(graph.network))
        groups = [g for g in graph.groups() if g.prunable]

        def widths(f: float) -> dict[str, int]:
            return {g.name: max(1, int(round(f * g.width))) for g in groups}

        def params(f: float) -> int:
            return _param_count(graph.pruned_copy(widths(f)))

        lo, hi = 0.0, 1.0  # params(lo) <= target is assumed (width 1 everywhere); find the largest f
        if params(1.0) <= target:
            return StepResult(False, model, {"note": f"model already has <= {target} parameters"})
        for _ in range(int(ctx.options["steps"])):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if params(mid) <= target else (lo, mid)
        chosen = widths(lo)
        graph.prune(chosen)
        return StepResult(True, model, {"target_params": target, "keep_fraction": lo,
                                        "widths": chosen, "params": _param_count(model)})


register_method(MagnitudePrune())
register_method(FilterPrune())
