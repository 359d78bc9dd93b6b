"""Frontends: turn a torch module, an ONNX file, a NeuroSim CSV or a network file into a Network.

This package's import registers file loaders by suffix with :mod:`imcflow.networks`; each loader
imports its heavy dependency (torch, onnx) only when called.
"""
from __future__ import annotations
