"""A compression method in one file: zero every weight below a fraction of its layer's largest
|weight|, and keep those zeros through fine-tuning (the same masks as the built-in ``magnitude``)."""
from imcflow.compress import CompressionMethod, MethodOption, StepResult, TrainingHooks
from imcflow.compress.simple import apply_masks, set_weight_mask, weight_modules


class ThresholdPruning(CompressionMethod):
    name = "threshold"
    description = "zero |w| < threshold x max|w| in every layer; masked fine-tuning"
    changes = "masks"
    options = (MethodOption("threshold", 0.1, "fraction of the layer's largest |w|"),)

    def apply(self, model, ctx):
        zeroed = {}
        for name, module in weight_modules(model, skip_first_last=False):
            w = module.weight.detach().abs()
            set_weight_mask(module, (w >= float(ctx.options["threshold"]) * w.max()).to(w.dtype))
            zeroed[name] = int((module.weight_mask == 0).sum())
        apply_masks(model)
        return StepResult(any(zeroed.values()), model, {"zeroed": zeroed})

    def hooks(self, model, ctx):
        return TrainingHooks(after_step=apply_masks)
