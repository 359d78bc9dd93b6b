"""Training substrate: datasets, augmentation, the checkpointed training loop, evaluation.

Public API: :func:`~imcflow.train.datasets.load_dataset`, :func:`~imcflow.train.datasets.dataset_names`,
:class:`~imcflow.train.loop.TrainConfig`, :func:`~imcflow.train.loop.fit`,
:func:`~imcflow.train.loop.evaluate`, :class:`~imcflow.train.checkpoint.ModelRecipe`.
"""
from imcflow.train.checkpoint import ModelRecipe, load_checkpoint, rebuild_model, save_checkpoint
from imcflow.train.datasets import DatasetInfo, ImageDataset, dataset_info, dataset_names, load_dataset
from imcflow.train.loop import EpochRecord, TrainConfig, TrainResult, evaluate, fit, prepare_inputs
from imcflow.train.stopping import Plateau, split_validation

__all__ = ["DatasetInfo", "EpochRecord", "ImageDataset", "ModelRecipe", "Plateau", "TrainConfig",
           "TrainResult",
           "dataset_info", "dataset_names", "evaluate", "fit", "load_checkpoint", "load_dataset",
           "prepare_inputs", "rebuild_model", "save_checkpoint", "split_validation"]
