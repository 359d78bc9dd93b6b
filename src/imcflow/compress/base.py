"""The compression-method interface, its registry, and the records every compression run reports.

A method is one module that subclasses :class:`CompressionMethod` and calls :func:`register_method`.
The pipeline (:mod:`imcflow.compress.pipeline`) drives every method the same way:

1. ``apply(model, ctx)`` transforms the model for one round (prunes channels, sets masks, replaces a
   layer by its factors, ...) and says whether anything changed;
2. ``hooks(model, ctx)`` may add a loss term and an after-step hook for the fine-tuning that follows;
3. ``annotate(model, layers, ctx)`` may add what only the method knows to the deployed layer list
   (skipped rows per mapping for PAIRS/KERNTROL, the original layer a low-rank factor came from).

Iterative methods (``iterative = True``) are applied round after round, each round fine-tuned and kept
only while the accuracy drop stays within the rule. ``plan`` is an optional torch-free dry run from the
layer list and the array alone (VWC-SDK prints it with ``--plan-only``).

What a method reports is always measured on the deployed network (:class:`DeployedNetwork`): the
weights actually programmed (masked, quantized) and the layer list with the shapes after compression,
mapped by the same engine as ``imcflow map``. Results here are torch-free.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer, Network
from imcflow.mapping import MappingOptions, NetworkMapping
from imcflow.registry import Registry

# ---------------------------------------------------------------------------------------------------
# Options: every reconstruction choice of a method is a named option with a default and a help text.


@dataclass(frozen=True)
class MethodOption:
    """One documented option of a method. The type of ``default`` is the type values are parsed to;
    numbers must be finite and, when given, within ``[minimum, maximum]``.

    >>> MethodOption("max_rounds", 10, "rounds at most", minimum=1).parse("3")
    3
    """

    name: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def parse(self, value: Any) -> Any:
        """Convert a command-line string (or a Python value) to the option's type and validate it."""
        kind = type(self.default)
        try:
            if isinstance(value, str) and kind is bool:
                low = value.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                out: Any = low in ("1", "true", "yes", "on")
            elif self.default is None or isinstance(value, kind):
                out = value
            else:
                out = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"option {self.name}: expected a {kind.__name__}, got {value!r}") from None
        if isinstance(out, (int, float)) and not isinstance(out, bool):
            self._check_range(out)
        if self.choices is not None and out not in self.choices:
            raise ConfigError(f"option {self.name}: got {out!r}; allowed: "
                              f"{', '.join(str(c) for c in self.choices)}")
        return out

    def _check_range(self, value: float) -> None:
        if not math.isfinite(value):
            raise ConfigError(f"option {self.name}: must be a finite number, got {value!r}")
        low = -math.inf if self.minimum is None else self.minimum
        high = math.inf if self.maximum is None else self.maximum
        if not low <= value <= high:
            allowed = (f">= {self.minimum}" if self.maximum is None else f"<= {self.maximum}"
                       if self.minimum is None else f"in [{self.minimum}, {self.maximum}]")
            raise ConfigError(f"option {self.name}: must be {allowed}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "default": self.default, "help": self.help,
                "choices": list(self.choices) if self.choices is not None else None,
                "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class CompressionContext:
    """What a method sees: the array, the mapping options, its resolved options, the layer list of the
    model as it is now (deployed shapes), the model's input shape (C, H, W) and the round index."""

    array: ArraySpec
    mapping: MappingOptions
    options: Mapping[str, Any]
    network: Network
    input_shape: tuple[int, ...]
    round: int = 0


@dataclass(frozen=True)
class StepResult:
    """What one ``apply`` did. ``model`` is the transformed model (may be the same object, changed in
    place). ``summary`` is JSON-ready detail for the report (e.g. channels removed per group)."""

    changed: bool
    model: Any
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingHooks:
    """Extra terms for the fine-tuning after a round: ``extra_loss(model) -> scalar tensor`` is added to
    the task loss, ``after_step(model)`` runs after every optimizer step (e.g. re-projection)."""

    extra_loss: Callable[[Any], Any] | None = None
    after_step: Callable[[Any], None] | None = None


@runtime_checkable
class MethodPlan(Protocol):
    """What :meth:`CompressionMethod.plan` returns: it renders itself for ``imcflow compress
    --plan-only`` (``render()`` the text table, ``to_dict()`` the JSON), so the CLI needs no
    knowledge of any method's plan type."""

    def render(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


class CompressionMethod:
    """Base class of a compression method. Subclasses set ``name``, ``description``, ``options`` and
    implement :meth:`apply`; the other hooks have neutral defaults."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[MethodOption, ...]] = ()
    iterative: ClassVar[bool] = False
    #: What the method changes, for ``imcflow methods``: "channels", "masks", "layers", "nothing".
    changes: ClassVar[str] = "nothing"

    def resolve_options(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated by ``overrides`` (strings are parsed); unknown names are an error."""
        known = {o.name: o for o in self.options}
        out = {o.name: o.default for o in self.options}
        for key, value in (overrides or {}).items():
            norm = key.replace("-", "_")
            if norm not in known:
                allowed = ", ".join(known) or "none"
                raise ConfigError(f"method {self.name!r} has no option {key!r}; options: {allowed}")
            out[norm] = known[norm].parse(value)
        return out

    def apply(self, model: Any, ctx: CompressionContext) -> StepResult:
        raise NotImplementedError

    def hooks(self, model: Any, ctx: CompressionContext) -> TrainingHooks:
        return TrainingHooks()

    def annotate(self, model: Any, layers: tuple[DeployedLayer, ...],
                 ctx: CompressionContext) -> tuple[DeployedLayer, ...]:
        return layers

    def plan(self, network: Network, array: ArraySpec, mapping: MappingOptions,
             options: Mapping[str, Any], structure: Any = None) -> MethodPlan | None:
        """A torch-free plan from the layer list and the array, or None if the method has none."""
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "iterative": self.iterative,
                "changes": self.changes, "has_plan": type(self).plan is not CompressionMethod.plan,
                "options": [o.to_dict() for o in self.options]}


def _check_method(method: object) -> None:
    if not isinstance(method, CompressionMethod) or not method.name:
        raise ConfigError(f"{method!r} is not a named CompressionMethod")


#: Every compression method by name (the CLI's ``--method``); third-party methods are found through the
#: ``imcflow.methods`` entry-point group.
METHODS: Registry[CompressionMethod] = Registry("compression method", entry_points="imcflow.methods",
                                                check=_check_method)


def register_method(method: CompressionMethod, *, replace: bool = False) -> CompressionMethod:
    """Add a method instance to the registry under its ``name`` (the CLI's ``--method``)."""
    return METHODS.add(method, replace=replace)


def get_method(name: str | CompressionMethod) -> CompressionMethod:
    return name if isinstance(name, CompressionMethod) else METHODS.get(name)


def method_names() -> list[str]:
    """Every registered method: the built-ins in registration order, then plugins."""
    return METHODS.names()



# ---------------------------------------------------------------------------------------------------
# The deployed network: what would be programmed into the crossbars.


def zero_im2col_rows(weight: np.ndarray) -> int:
    """Rows of the im2col layout (one per input channel and kernel tap, per group) whose weights are
    zero for every output channel: rows a crossbar can skip without any extra circuit.

    >>> w = np.zeros((2, 3, 1, 1)); w[:, 0] = 1
    >>> zero_im2col_rows(w)
    2
    """
    w = np.asarray(weight)
    if w.ndim == 2:  # linear: (out, in)
        w = w[:, :, None, None]
    return int((~np.any(w != 0, axis=0)).sum())


@dataclass(frozen=True)
class DeployedLayer:
    """One weight layer as programmed: its shape record, the deployed weights (quantized integers when
    ``quantized``, else floats) and the zero structure that the method may exploit.

    ``skipped_rows`` maps a mapping method to the array rows that method's layout skips (filled by
    methods that know their pattern, e.g. PAIRS); ``origin`` is the layer of the uncompressed model
    this one came from (a low-rank factor names its original layer).
    """

    layer: ConvLayer
    weight: np.ndarray = field(compare=False, repr=False)
    quantized: bool = False
    origin: str = ""
    skipped_rows: Mapping[str, int] = field(default_factory=dict, compare=False)
    #: Non-zero weights the compression left (float weights times the method's mask), before the
    #: quantizer rounds small weights to 0; None: same as :attr:`nonzero` (float weights deployed).
    nonzero_before_quant: int | None = field(default=None, compare=False)

    @property
    def nonzero(self) -> int:
        return int(np.count_nonzero(self.weight))

    @property
    def nonzero_compression(self) -> int:
        """Non-zero weights after compression alone (quantization zeros not counted)."""
        return self.nonzero if self.nonzero_before_quant is None else self.nonzero_before_quant

    @property
    def zero_rows(self) -> int:
        return zero_im2col_rows(self.weight)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.layer.name, "origin": self.origin or self.layer.name,
                "in_channels": self.layer.in_channels, "out_channels": self.layer.out_channels,
                "kernel_size": [self.layer.Kh, self.layer.Kw], "input_size": [self.layer.H, self.layer.W],
                "weights": self.layer.weight_count, "nonzero": self.nonzero,
                "nonzero_compression": self.nonzero_compression,
                "zero_im2col_rows": self.zero_rows, "quantized": self.quantized,
                "skipped_rows": dict(self.skipped_rows)}


@dataclass(frozen=True)
class MappingSummary:
    """Network totals of one mapping method on the deployed network."""

    method: str
    cycles: int
    arrays: int
    utilization: float  # weights placed / cells of the arrays that hold the network
    mac_efficiency: float
    skipped_rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"cycles": self.cycles, "arrays": self.arrays, "utilization": self.utilization,
                "mac_efficiency": self.mac_efficiency, "skipped_rows": self.skipped_rows}


@dataclass(frozen=True)
class DeployedNetwork:
    """The deployed layer list, its mapping under each method, and optional cost-model numbers."""

    layers: tuple[DeployedLayer, ...]
    mapping: NetworkMapping = field(compare=False)
    parameters: int
    cost: Mapping[str, Mapping[str, float | None]] | None = field(default=None, compare=False)

    @property
    def network(self) -> Network:
        return Network(self.mapping.network, tuple(d.layer for d in self.layers))

    @property
    def weights(self) -> int:
        return sum(d.layer.weight_count for d in self.layers)

    @property
    def nonzero_weights(self) -> int:
        """Non-zero weights as programmed (compression zeros and quantization zeros both removed)."""
        return sum(d.nonzero for d in self.layers)

    @property
    def nonzero_compression(self) -> int:
        """Non-zero weights the compression left, before quantization rounds any to zero."""
        return sum(d.nonzero_compression for d in self.layers)

    def summary(self, method: str) -> MappingSummary:
        """Totals of ``method`` (or ``"best"``): cycles, preloaded arrays, utilization."""
        totals = self.mapping.totals(method)
        picks = [r.mappings[r.best if method == "best" else method] for r in self.mapping.layers]
        placed = sum(m.avg_utilization * m.arrays for m in picks)
        skipped = [d.skipped_rows.get(method) for d in self.layers]
        return MappingSummary(method, totals.cycles, totals.arrays,
                              placed / totals.arrays if totals.arrays else 0.0, totals.mac_efficiency,
                              sum(s or 0 for s in skipped) if any(s is not None for s in skipped) else None)

    def summaries(self) -> dict[str, MappingSummary]:
        return {m: self.summary(m) for m in (*self.mapping.methods, "best")}

    def energy_j(self, method: str) -> float | None:
        if not self.cost or method not in self.cost:
            return None
        return self.cost[method].get("energy_j")

    def to_dict(self, with_mapping: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "parameters": self.parameters, "weights": self.weights,
            "nonzero_weights": self.nonzero_weights,
            "nonzero_compression": self.nonzero_compression,
            "zeroed_by_quantization": self.nonzero_compression - self.nonzero_weights,
            "mapping": {m: {**s.to_dict(), "energy_j": self.energy_j(m)}
                        for m, s in self.summaries().items()},
            "layers": [l.to_dict() for l in self.layers],
        }
        if self.cost:
            d["cost"] = {m: dict(v) for m, v in self.cost.items()}
        if with_mapping:
            d["layer_mappings"] = self.mapping.to_dict()["layers"]
        return d

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([l.to_dict() for l in self.layers])


# ---------------------------------------------------------------------------------------------------
# A compression run's report.


@dataclass(frozen=True)
class RoundRecord:
    """One round: what the method changed, the accuracy after fine-tuning, and whether it was kept."""

    index: int
    accuracy: float  # what the rule reads: validation accuracy (test accuracy without a split)
    accepted: bool
    seconds: float
    summary: Mapping[str, Any] = field(default_factory=dict, compare=False)
    test_accuracy: float | None = None
    epochs: int | None = None  # fine-tuning epochs run (early stopping may end before the budget)

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.index, "accuracy": self.accuracy, "accepted": self.accepted,
                "seconds": self.seconds, "summary": dict(self.summary),
                "test_accuracy": self.test_accuracy, "epochs": self.epochs}


@dataclass(frozen=True)
class CompressionReport:
    """Baseline vs compressed, both measured on their deployed networks with the same data."""

    model: str
    data: str
    method: str
    options: Mapping[str, Any]
    array: ArraySpec
    mapping: MappingOptions
    baseline_accuracy: float
    compressed_accuracy: float
    baseline: DeployedNetwork
    compressed: DeployedNetwork
    rounds: tuple[RoundRecord, ...]
    seconds: Mapping[str, float]
    config: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: Accuracies on the held-out validation split (None without one); the rule reads these.
    baseline_val_accuracy: float | None = None
    compressed_val_accuracy: float | None = None
    #: How rounds were accepted, in words (e.g. the drop rule, or why it did not apply).
    rule: str = ""

    @property
    def accuracy_drop(self) -> float:
        """Baseline minus compressed top-1, in percentage points."""
        return 100.0 * (self.baseline_accuracy - self.compressed_accuracy)

    def speedup(self, method: str) -> float:
        return self.baseline.summary(method).cycles / self.compressed.summary(method).cycles

    def to_dict(self) -> dict[str, Any]:
        methods = (*self.baseline.mapping.methods, "best")
        return {
            "model": self.model, "data": self.data, "method": self.method,
            "options": dict(self.options), "array": self.array.to_dict(),
            "mapping_options": {"geometry": self.mapping.geometry, "search": self.mapping.search},
            "config": dict(self.config),
            "baseline": {"accuracy": self.baseline_accuracy, **self.baseline.to_dict()},
            "compressed": {"accuracy": self.compressed_accuracy, **self.compressed.to_dict()},
            "accuracy_drop_pct": self.accuracy_drop,
            "validation_accuracy": {"baseline": self.baseline_val_accuracy,
                                    "compressed": self.compressed_val_accuracy},
            "rule": self.rule,
            "speedup": {m: self.speedup(m) for m in methods},
            "rounds": [r.to_dict() for r in self.rounds],
            "seconds": dict(self.seconds),
        }

    def to_frame(self):
        """One row per (network, mapping method): accuracy, parameters, arrays, cycles, utilization."""
        import pandas as pd

        rows = []
        for label, acc, dep in (("baseline", self.baseline_accuracy, self.baseline),
                                ("compressed", self.compressed_accuracy, self.compressed)):
            for m, s in dep.summaries().items():
                rows.append({"network": label, "accuracy": acc, "parameters": dep.parameters,
                             "mapping": m, **s.to_dict(), "energy_j": dep.energy_j(m)})
        return pd.DataFrame(rows)


def layer_channels(network: Network | Sequence[ConvLayer]) -> list[dict[str, Any]]:
    """``[{"name", "in_channels", "out_channels"}, ...]`` of a layer list (the plan's JSON shape)."""
    layers = network.layers if isinstance(network, Network) else network
    return [{"name": l.name, "in_channels": l.in_channels, "out_channels": l.out_channels}
            for l in layers]
