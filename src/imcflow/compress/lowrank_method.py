"""The ``lowrank`` and ``group-lowrank`` compression methods (compression.md section A) on the method
interface: choose (k, g) per layer (:func:`~imcflow.compress.lowrank.plan_lowrank`), replace each chosen
conv by its SVD-initialised factors, fine-tune (the pipeline's), and deploy every low-rank module as one
composite :class:`~imcflow.mapping.lowrank.LowRankLayer`, so its cycles are R's (by the mapping method)
plus L's block-diagonal I_P (x) L activations.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from imcflow.compress.base import (
    CompressionContext,
    CompressionMethod,
    DeployedLayer,
    MethodOption,
    StepResult,
    register_method,
)
from imcflow.compress.lowrank import (
    decompose_model,
    fold_lowrank_records,
    model_weights,
    plan_lowrank,
    rank_policies,
)
from imcflow.errors import ConfigError


def parse_int_list(name: str, text: str) -> tuple[int, ...]:
    """``"1,2,4"`` -> (1, 2, 4)."""
    try:
        values = tuple(int(t) for t in str(text).split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"option {name}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ConfigError(f"option {name}: expected positive integers, got {text!r}")
    return values


def _lowrank_options(default_groups: int) -> tuple[MethodOption, ...]:
    """The options of both methods; only the default g differs."""
    return (
        MethodOption("policy", "ratio", "rank choice: uniform (rank), ratio (largest k within ratio x "
                     "the layer's weights), energy (singular-value energy kept), array-aware (per layer "
                     "the group count with the fewest cycles at the ratio/energy rank)",
                     tuple(rank_policies())),
        MethodOption("rank", 8, "k for policy=uniform (clipped to each block's full rank)", minimum=1),
        MethodOption("ratio", 0.5, "parameter budget per decomposed layer (factor weights / original)",
                     minimum=0),
        MethodOption("energy", 0.0, "fraction of squared singular values kept (policy=energy; "
                     "array-aware uses it instead of ratio when > 0)", minimum=0, maximum=1),
        MethodOption("rank_groups", default_groups, "g: groups of the factorisation (1 = plain low rank)",
                     minimum=1),
        MethodOption("split", "input", "split W along input channels (grouped R) or output channels "
                     "(grouped L)", ("input", "output")),
        MethodOption("group_choices", "1,2,4,8", "candidate g for policy=array-aware"),
        MethodOption("mapping_method", "vwsdk", "mapping whose cycles policy=array-aware minimises"),
        MethodOption("layers", "", "comma-separated layer names to decompose (default: every conv "
                     "but the first; the classifier stays dense)"),
        MethodOption("combine", "sum", "layer cycles: R + L (sum) or max(R, L) (pipelined)",
                     ("sum", "pipelined")),
    )


class LowRank(CompressionMethod):
    name = "lowrank"
    description = "truncated-SVD factors KxK (IC->k) then 1x1 (k->OC); SDK/VW-SDK-mapped, I_N(x)L for L"
    changes = "layers"
    options = _lowrank_options(1)

    def _plan(self, model: Any, ctx: CompressionContext):
        o = ctx.options
        network, weights = model_weights(model, ctx.input_shape)
        energy = float(o["energy"]) or None
        return plan_lowrank(
            network, weights, str(o["policy"]), rank=int(o["rank"]), rank_groups=int(o["rank_groups"]),
            ratio=float(o["ratio"]), energy=energy, split=o["split"],
            layers=[n.strip() for n in str(o["layers"]).split(",") if n.strip()] or None,
            array=ctx.array, mapping_method=str(o["mapping_method"]), mapping_options=ctx.mapping,
            group_choices=parse_int_list("group_choices", o["group_choices"]))

    def apply(self, model: Any, ctx: CompressionContext) -> StepResult:
        from imcflow.compress.lowrank import lowrank_modules

        if lowrank_modules(model):
            return StepResult(False, model, {"note": "already decomposed"})
        plan = self._plan(model, ctx)
        if not plan.choices:
            return StepResult(False, model, {"note": "no layer fits the budget", **plan.to_dict()})
        decompose_model(model, plan)
        return StepResult(True, model, plan.to_dict())

    def annotate(self, model: Any, layers: tuple[DeployedLayer, ...],
                 ctx: CompressionContext) -> tuple[DeployedLayer, ...]:
        """Merge each module's ``.r``/``.l`` entries into one deployed :class:`LowRankLayer`.

        The deployed weight of the merged entry is R's and L's programmed weights flattened into one
        (1, n) row, so its non-zero count is the factors' (DeployedLayer holds one array per layer).
        """
        by_name = {d.origin or d.layer.name: d for d in layers}
        merged = fold_lowrank_records(model, [(d.origin or d.layer.name, d.layer) for d in layers],
                                      str(ctx.options.get("combine", "sum")))
        out = []
        for name, record, parts in merged:
            if len(parts) == 1:
                out.append(by_name[parts[0]])
                continue
            ds = [by_name[p] for p in parts]
            flat = np.concatenate([d.weight.reshape(-1) for d in ds])[None, :]
            out.append(DeployedLayer(record, flat, all(d.quantized for d in ds), origin=name,
                                     nonzero_before_quant=sum(d.nonzero_compression for d in ds)))
        return tuple(out)


class GroupLowRank(LowRank):
    name = "group-lowrank"
    description = "group low rank: W split into g blocks (input channels), rank-k SVD per block"
    options = _lowrank_options(4)


register_method(LowRank())
register_method(GroupLowRank())
