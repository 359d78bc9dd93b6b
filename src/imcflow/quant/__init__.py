"""Quantization: STE quantizers, quantized layers with masks, batch-norm folding, integer-only convs.

- :mod:`imcflow.quant.quantizers`: ``uniform`` (symmetric per-channel), ``dorefa`` (the VW-SDK
  authors' convention), ``pow2`` (shift-only scales) weight quantizers; clamped uniform activations.
- :mod:`imcflow.quant.modules`: :class:`QuantConv2d`/:class:`QuantLinear` (quantize, then mask),
  :func:`quantize_model`, and :func:`stored_weights` (:class:`StoredWeights`), the one source of
  the integers a crossbar stores for a layer (deploy, the simulator wrapper and, through it, NeuroSim
  traces).
- :mod:`imcflow.quant.folding`: :func:`fold_batchnorm`, :func:`integerize_conv` (compression.md D).
"""
from imcflow.quant.folding import IntegerConv, fold_batchnorm, integerize_conv
from imcflow.quant.modules import (
                                   QuantConv2d,
                                   QuantLinear,
                                   StoredWeights,
                                   integer_weights,
                                   is_quantized,
                                   masked_float_weight,
                                   quantize_model,
                                   stored_weights,
)
from imcflow.quant.quantizers import (
                                      WEIGHT_QUANTIZERS,
                                      ClampedUniformActivation,
                                      DoReFaWeight,
                                      PowerOfTwoWeight,
                                      UniformSymmetricWeight,
                                      WeightQuantizer,
                                      is_power_of_two,
                                      round_ste,
                                      weight_quantizer,
)

__all__ = ["ClampedUniformActivation", "DoReFaWeight", "IntegerConv", "PowerOfTwoWeight", "QuantConv2d",
           "QuantLinear", "StoredWeights", "UniformSymmetricWeight", "WEIGHT_QUANTIZERS", "WeightQuantizer",
           "fold_batchnorm", "integer_weights", "integerize_conv", "is_power_of_two", "is_quantized",
           "masked_float_weight", "quantize_model", "round_ste", "stored_weights", "weight_quantizer"]
