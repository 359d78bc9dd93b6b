"""Built-in PyTorch models (written here, no torchvision) and their registry.

>>> from imcflow.models import create_model, model_names
>>> "resnet18" in model_names()
True
"""
from __future__ import annotations

from imcflow.models.registry import (
                                     MODELS,
                                     ModelSpec,
                                     create_model,
                                     default_input_shape,
                                     get_spec,
                                     model_names,
)

__all__ = ["MODELS", "ModelSpec", "create_model", "default_input_shape", "get_spec", "model_names"]
