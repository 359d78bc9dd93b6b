"""Two small methods that exercise the interface: ``none`` and ``magnitude``.

``none`` changes nothing: its report is the baseline as deployed (the reference every other method is
compared with). ``magnitude`` zeroes the smallest-magnitude weights of each layer (unstructured, a
``weight_mask`` buffer on the module) and keeps them zero through fine-tuning with an after-step hook;
the deployed weights then carry the zeros, and rows of the im2col layout that became all-zero are
counted as skippable.
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


class NoCompression(CompressionMethod):
    name = "none"
    description = "identity: the baseline as deployed (reference for the other methods)"
    changes = "nothing"

    def apply(self, model: Any, ctx: CompressionContext) -> StepResult:
        return StepResult(False, model, {"note": "nothing to do"})


def weight_modules(model: Any, skip_first_last: bool) -> list[tuple[str, Any]]:
    """Every Conv2d and Linear module of ``model`` as (qualified name, module), in definition order;
    without the first and the last with ``skip_first_last``."""
    from torch import nn

    mods = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return mods[1:-1] if skip_first_last and len(mods) > 2 else mods


def apply_masks(model: Any) -> None:
    """Re-zero every masked weight (the after-step hook: an optimizer step may move a pruned weight)."""
    import torch

    with torch.no_grad():
        for m in model.modules():
            mask = getattr(m, "weight_mask", None)
            if torch.is_tensor(mask) and not hasattr(m, "weight_orig"):
                m.weight.mul_(mask)


def set_weight_mask(module: Any, mask: Any) -> None:
    """Give ``module`` the weight mask ``mask`` (1 keeps a weight, 0 zeroes it), combined with any mask
    it already has, so pruning rounds accumulate. The weights are zeroed by :func:`apply_masks`."""
    import torch

    old = getattr(module, "weight_mask", None)
    if torch.is_tensor(old):
        mask = mask * old
    if hasattr(module, "set_mask"):  # imcflow.quant layers: their mask is applied after quantizing
        module.set_mask(mask)
    elif torch.is_tensor(old):
        old.copy_(mask)
    else:
        module.register_buffer("weight_mask", mask)


class MagnitudePruning(CompressionMethod):
    name = "magnitude"
    description = "unstructured pruning: zero the smallest |w| of each layer, masked fine-tuning"
    changes = "masks"
    options = (
        MethodOption("sparsity", 0.5, "fraction of each layer's weights set to zero", minimum=0, maximum=1),
        MethodOption("skip_first_last", True, "keep the first and the last weight layer dense"),
    )

    def apply(self, model: Any, ctx: CompressionContext) -> StepResult:
        import torch

        sparsity = float(ctx.options["sparsity"])
        if not 0.0 <= sparsity < 1.0:
            from imcflow.errors import ConfigError

            raise ConfigError(f"option sparsity must be in [0, 1), got {sparsity}")
        pruned = {}
        for name, m in weight_modules(model, bool(ctx.options["skip_first_last"])):
            w = m.weight.detach()
            k = int(sparsity * w.numel())
            mask = torch.ones_like(w)
            if k:
                # Ties at the threshold are broken by position (stable sort), so exactly k are zeroed.
                order = torch.argsort(w.abs().flatten(), stable=True)[:k]
                mask.view(-1)[order] = 0
            set_weight_mask(m, mask)
            pruned[name] = int((m.weight_mask == 0).sum())
        apply_masks(model)
        return StepResult(bool(pruned), model, {"zeroed": pruned})

    def hooks(self, model: Any, ctx: CompressionContext) -> TrainingHooks:
        return TrainingHooks(after_step=apply_masks)


register_method(NoCompression())
register_method(MagnitudePruning())
