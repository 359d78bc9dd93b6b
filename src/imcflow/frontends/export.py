"""Writing a network in another tool's format: a registry of exporters by format name.

``neurosim`` (NetWork.csv), ``yaml`` and ``json`` (the plain network file) work for any network;
``onnx`` needs the PyTorch module behind it, so it works for the built-in torch models (random
weights: the file is for the layer list and for feeding other tools, not for accuracy).
Exporters return an :class:`Exported` result; only the CLI writes it to disk.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imcflow.errors import ConfigError
from imcflow.layers import Network
from imcflow.registry import Registry


@dataclass(frozen=True)
class ExportOptions:
    """``padding``: NeuroSim size convention (``neurosim`` raw H, ``padded`` H+2p); ``groups``:
    ``refuse`` or ``expand`` grouped layers into one NeuroSim row per group; ``seed``: the random
    weights of an ONNX export (the same seed gives the same file)."""

    padding: str = "neurosim"
    groups: str = "refuse"
    seed: int = 0  # seeds the random initial weights of an ONNX export


@dataclass(frozen=True)
class Exported:
    """One exported network: its text (or, for ONNX, the torch ONNX program) and notes for the user."""

    format: str
    network: str
    text: str | None = None
    program: Any = field(default=None, compare=False, repr=False)
    notes: tuple[str, ...] = ()

    def save(self, path: str) -> list[str]:
        """Write to ``path`` atomically; returns the files written (ONNX weights go to
        ``path + '.data'``)."""
        from imcflow.io import atomic_write_files, atomic_write_text

        if self.program is not None:
            written = atomic_write_files(path, lambda tmp: self.program.save(str(tmp), external_data=True))
            return [str(p) for p in written]
        atomic_write_text(path, self.text or "")
        return [path]

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "network": self.network, "notes": list(self.notes)}


def _neurosim(network: Network, options: ExportOptions) -> Exported:
    from imcflow.frontends.neurosim import neurosim_rows, ops_note

    rows = neurosim_rows(network, options.padding, options.groups)  # type: ignore[arg-type]
    notes = rows.notes
    if rows.neurosim_ops != sum(2 * l.macs for l in network.layers):
        notes = (*notes, ops_note(network, rows))
    return Exported("neurosim", network.name, rows.to_csv(), notes=notes)


def _yaml(network: Network, options: ExportOptions) -> Exported:
    from imcflow.frontends.netfile import network_to_yaml

    return Exported("yaml", network.name, network_to_yaml(network))


def _json(network: Network, options: ExportOptions) -> Exported:
    from imcflow.frontends.netfile import network_to_json

    return Exported("json", network.name, network_to_json(network))


def _onnx(network: Network, options: ExportOptions) -> Exported:
    try:
        from imcflow.models.registry import MODELS, create_model
    except ModuleNotFoundError as exc:  # torch missing
        raise ConfigError(f"ONNX export needs torch: {exc}") from None
    if network.source != "built-in" or network.name not in MODELS or not network.input_shape:
        raise ConfigError(f"ONNX export needs a PyTorch model: give a built-in model name "
                          f"({', '.join(MODELS)}); {network.name!r} is a layer list from "
                          f"{network.source or 'elsewhere'}")
    import torch

    from imcflow.seeding import seed_everything

    c, h, w = network.input_shape
    seed_everything(options.seed)  # the file holds the random initial weights: same seed, same file
    model = create_model(network.name, in_channels=c, input_size=(h, w)).eval()
    # The exporter reports progress on stdout; keep stdout for results.
    with contextlib.redirect_stdout(sys.stderr):
        program = torch.onnx.export(model, (torch.zeros(1, c, h, w),), dynamo=True, verbose=False)
    return Exported("onnx", network.name, program=program,
                    notes=(f"{network.name}: randomly initialised weights, input 1x{c}x{h}x{w}",))


EXPORTERS: Registry[Callable[[Network, ExportOptions], Exported]] = Registry(
    "export format", {"neurosim": _neurosim, "yaml": _yaml, "json": _json, "onnx": _onnx})


def register_exporter(name: str, exporter: Callable[[Network, ExportOptions], Exported], *,
                      replace: bool = False) -> None:
    EXPORTERS.register(name, exporter, replace=replace)


def export_network(network: Network, to: str, options: ExportOptions | None = None) -> Exported:
    """Export ``network`` in format ``to`` (``neurosim``, ``yaml``, ``json``, ``onnx``).

    >>> from imcflow.layers import ConvLayer, Network
    >>> net = Network("n", (ConvLayer("c", 3, 8, 3, input_size=32, padding=1),))
    >>> export_network(net, "neurosim", ExportOptions(padding="padded")).text
    '34,34,3,3,3,8,0,1\\r\\n'
    """
    return EXPORTERS.get(to)(network, options or ExportOptions())
