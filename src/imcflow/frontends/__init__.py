"""Frontends: turn a torch module, an ONNX file, a NeuroSim CSV or a network file into a Network.

Each module reads one format; :mod:`imcflow.networks` registers them as file loaders by suffix and
imports each only when a file of its kind is loaded. This package imports nothing of
:mod:`imcflow.networks` (imports point from ``networks`` to ``frontends``, never back).

* :mod:`.torch_trace`: a torch module (forward hooks) -> Network
* :mod:`.onnx_import`: ``.onnx`` files
* :mod:`.neurosim`: NeuroSim ``NetWork.csv`` files
* :mod:`.netfile`: ``.yaml``/``.yml``/``.json`` network files
* :mod:`.export`: Network -> NeuroSim CSV, YAML, JSON, ONNX
"""
