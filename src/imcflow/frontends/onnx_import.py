"""The ONNX frontend: an ``.onnx`` file (external data included) -> the layer list a crossbar maps.

The graph is shape-inferred (``onnx.shape_inference``) and walked in node order. Per operator:

* ``Conv`` (2-D, and 1-D as a 1 x L map) -> a conv layer with its groups, dilations, strides, kernel
  shape and pads; ``auto_pad`` (SAME_UPPER, SAME_LOWER, VALID) is resolved to explicit pads.
* ``Gemm`` and ``MatMul`` with a constant weight (an initializer or a ``Constant``, possibly through
  Identity/Transpose/Cast/DequantizeLinear) -> a linear layer. A MatMul on an ``(N, T, K)`` activation
  is T vector-matrix products: a linear layer on a T x 1 map. A MatMul of two activations holds no
  weights and is passed over.
* Operators without weights (activations, pooling, Add, Concat, BatchNormalization, Flatten,
  Reshape, ...) are passed over (counted in ``Network.meta["onnx"]["passed_over"]``).
* Anything else that carries a weight matrix (``ConvTranspose``, RNNs, ``Gather`` on an embedding
  table, an unknown op with a constant of rank >= 2, a Conv3d) is collected as *unsupported*: the
  result lists all of them, and :func:`load_onnx` raises one :class:`UnsupportedLayerError` naming
  every one - never a crash at the first.

Asymmetric pads (``pads = [top, left, bottom, right]`` with top != bottom): a crossbar mapping depends
only on the output size, kernel, stride and dilation, so the layer keeps ``padding = min(begin, end)``
per axis and its ``input_size`` grows by ``|begin - end|``. The output size and the mapping are then
exactly those of the ONNX layer; the original pads are kept in ``meta["onnx"]["asymmetric_pads"]``.

Layer names: the weight initializer's name minus ``.weight`` when it is a torch module path (torch's
dynamo exporter: ``layer1.0.conv1.weight``); else the module path in the node's scope name (torch's
legacy exporter: ``/layer1/layer1.0/conv1/Conv``); else the node name; else ``conv<n>``/``fc<n>``.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from imcflow.errors import ConfigError, FormatError, UnsupportedLayerError
from imcflow.layers import ConvLayer, Network
from imcflow.registry import Registry

Shape = tuple[int | None, ...]

# Operators that carry no weight matrix: passed over whatever their constant inputs are (BN scales,
# bias vectors, reshape targets). Gather is deliberately absent: on a constant table it is an embedding.
WEIGHTLESS_OPS = frozenset([
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Clip", "Gelu", "Erf",
    "Elu", "Selu", "Celu", "Mish", "Softplus", "Softsign", "ThresholdedRelu", "Softmax", "LogSoftmax",
    "Swish", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool",
    "MaxUnpool", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Abs", "Exp", "Log",
    "Floor", "Ceil", "Round", "Sign", "Min", "Max", "Mean", "Sum", "Mod", "Concat", "Split", "Slice",
    "Pad", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth", "Tile", "Expand", "BatchNormalization",
    "InstanceNormalization", "LayerNormalization", "GroupNormalization", "LRN", "RMSNormalization",
    "MeanVarianceNormalization", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity",
    "Dropout", "Shape", "Size", "Cast", "CastLike", "Constant", "ConstantOfShape", "Range", "Where",
    "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Not", "And", "Or", "Xor",
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin", "TopK", "NonZero", "QuantizeLinear",
    "DequantizeLinear", "DynamicQuantizeLinear"])
# Operators that always hold weights imcflow cannot map, with the reason given to the user.
UNSUPPORTED_WEIGHT_OPS = {
    "ConvTranspose": "transposed convolution is not supported",
    "ConvInteger": "integer (quantized) ONNX convolution is not supported; export the float model",
    "QLinearConv": "integer (quantized) ONNX convolution is not supported; export the float model",
    "MatMulInteger": "integer (quantized) ONNX MatMul is not supported; export the float model",
    "QLinearMatMul": "integer (quantized) ONNX MatMul is not supported; export the float model",
    "LSTM": "recurrent layers are not supported", "GRU": "recurrent layers are not supported",
    "RNN": "recurrent layers are not supported", "DeformConv": "deformable convolution is not supported",
    "Attention": "fused attention is not supported",
}
# Ops through which a constant stays a constant (for finding a weight behind a Transpose, say).
_CONSTANT_PASSTHROUGH = frozenset({"Identity", "Cast", "Transpose", "DequantizeLinear", "Reshape"})
_MODULE_WEIGHT = re.compile(r"^([A-Za-z_][\w]*(?:\.[\w]+)*)\.weight$")


@dataclass(frozen=True)
class UnsupportedOp:
    """An operator with weights that cannot be mapped, and why."""

    node: str
    op_type: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"node": self.node, "op_type": self.op_type, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.op_type} {self.node!r}: {self.reason}"


@dataclass(frozen=True)
class OnnxImport:
    """What an ONNX file holds for a crossbar: the mappable network, what cannot be mapped, what was
    passed over. ``network`` is None when no layer could be mapped."""

    source: str
    network: Network | None
    unsupported: tuple[UnsupportedOp, ...]
    passed_over: dict[str, int] = field(hash=False)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source,
                "network": self.network.to_dict() if self.network else None,
                "unsupported": [u.to_dict() for u in self.unsupported],
                "passed_over": dict(self.passed_over), "notes": list(self.notes)}

    def to_frame(self):
        import pandas as pd

        rows = [{"status": "mapped", **l.to_dict()} for l in (self.network.layers if self.network else ())]
        rows += [{"status": "unsupported", "name": u.node, "op_type": u.op_type, "reason": u.reason}
                 for u in self.unsupported]
        return pd.DataFrame(rows)

    def require_all_mappable(self) -> Network:
        """The network, or one :class:`UnsupportedLayerError` listing every unsupported operator."""
        if self.unsupported:
            lines = "\n  ".join(str(u) for u in self.unsupported)
            mapped = len(self.network.layers) if self.network else 0
            raise UnsupportedLayerError(
                f"{self.source}: {len(self.unsupported)} operator(s) with weights cannot be mapped "
                f"({mapped} layer(s) could be):\n  {lines}")
        if self.network is None:
            raise FormatError(f"{self.source}: the ONNX graph has no Conv, Gemm or MatMul-with-weight "
                              f"layer to map")
        return self.network


# --- reading the file ----------------------------------------------------------------------------

def _read_model(path: str):
    import onnx

    if os.path.getsize(path) == 0:
        raise FormatError(f"{path}: the file is empty, not an ONNX model")
    try:
        # Weights are not needed (their dims are in the proto): external data is checked, not read.
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError/RuntimeWarning variants
        raise FormatError(f"{path}: not an ONNX model (protobuf could not parse it: "
                          f"{type(exc).__name__})") from None
    if model.ir_version <= 0 or not model.HasField("graph") or not len(model.graph.node):
        raise FormatError(f"{path}: not an ONNX model (no IR version or no graph nodes); is it the "
                          f"right file?")
    _check_external_data(model, path)
    if len(model.functions):
        import onnx.inliner

        model = onnx.inliner.inline_local_functions(model)
    return model


def _check_external_data(model, path: str) -> None:
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    base = os.path.dirname(os.path.abspath(path))
    for tensor in model.graph.initializer:
        if uses_external_data(tensor):
            info = ExternalDataInfo(tensor)
            target = os.path.join(base, info.location)
            if not os.path.exists(target):
                raise FormatError(f"{path}: weight {tensor.name!r} is stored in external data file "
                                  f"{info.location!r}, which is missing (looked in {base})")
            needed = (info.offset or 0) + (info.length or 0)
            if info.length and os.path.getsize(target) < needed:
                raise FormatError(f"{path}: external data file {info.location!r} is truncated: weight "
                                  f"{tensor.name!r} needs bytes up to {needed}, file has "
                                  f"{os.path.getsize(target)}")


def _set_input_shape(model, input_shape: tuple[int, ...], path: str) -> None:
    """Fix the first real graph input to (1, *input_shape) so shape inference has concrete sizes."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if not inputs:
        raise FormatError(f"{path}: the graph has no input to give the shape {input_shape} to")
    dims = inputs[0].type.tensor_type.shape.dim
    want = (1, *input_shape)
    if len(dims) and len(dims) != len(want):
        raise ConfigError(f"{path}: input {inputs[0].name!r} has {len(dims)} dimensions; --input "
                          f"{'x'.join(map(str, input_shape))} gives {len(want)}")
    del dims[:]
    for v in want:
        dims.add().dim_value = v


def _infer(model, path: str):
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises several unrelated types here
        raise FormatError(f"{path}: ONNX shape inference failed: {str(exc).splitlines()[0]}") from None


# --- the graph walk ------------------------------------------------------------------------------

def _shape_of(value_info) -> Shape | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)


class _Graph:
    """Shapes, constants and attributes of one inferred graph, plus what the walk collects."""

    def __init__(self, model, path: str) -> None:
        from onnx import helper

        self.path = path
        self._helper = helper
        g = model.graph
        self.shapes: dict[str, Shape | None] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            self.shapes[vi.name] = _shape_of(vi)
        self.constants: dict[str, tuple[int, ...]] = {t.name: tuple(t.dims) for t in g.initializer}
        self.origin: dict[str, str] = {t.name: t.name for t in g.initializer}  # constant -> source name
        self.unknown: set[str] = set()  # computed from constants, shape not inferred
        for node in g.node:
            if node.op_type == "Constant" and node.output:
                for a in node.attribute:
                    if a.name == "value":
                        self.constants[node.output[0]] = tuple(a.t.dims)
                        self.origin[node.output[0]] = node.output[0]
            elif node.op_type in _CONSTANT_PASSTHROUGH and node.input and node.input[0] in self.constants:
                src = node.input[0]
                dims = self.constants[src]
                if node.op_type == "Transpose":
                    perm = self.attr(node, "perm", list(reversed(range(len(dims)))))
                    dims = tuple(dims[p] for p in perm)
                elif node.op_type == "Reshape":
                    shape = self.shapes.get(node.output[0]) or ()
                    if None in shape or not shape:
                        continue
                    dims = tuple(cast(int, d) for d in shape)
                self.constants[node.output[0]] = tuple(dims)
                self.origin[node.output[0]] = self.origin[src]
            elif _computed_from_constants(node, self.constants, self.unknown):
                # Folded like a constant: a weight made at run time from initializers only (the model
                # zoo's ConstantOfShape of a stored shape). Only its shape matters here, and shape
                # inference (with data propagation) knows it; when it does not, the value is a
                # constant of unknown shape, which a layer that needs it refuses by name.
                for out in node.output:
                    inferred = self.shapes.get(out)
                    if inferred is None or None in inferred:
                        self.unknown.add(out)
                    else:
                        self.constants[out] = tuple(int(d or 0) for d in inferred)
                        self.origin[out] = out
        self.graph_inputs = [i.name for i in g.input if i.name not in self.constants]

    def attr(self, node, name: str, default: Any) -> Any:
        for a in node.attribute:
            if a.name == name:
                v = self._helper.get_attribute_value(a)
                return v.decode() if isinstance(v, bytes) else v
        return default

    def dims(self, name: str) -> Shape | None:
        if name in self.constants:
            return self.constants[name]
        return self.shapes.get(name)


# Operators whose output is not a function of their inputs: never folded.
_NONDETERMINISTIC = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                               "Multinomial", "Bernoulli", "Dropout"})


def _computed_from_constants(node, constants: dict[str, tuple[int, ...]], unknown: set[str]) -> bool:
    """True when every input of ``node`` is a constant (folded or stored) and the op is a pure
    function without subgraphs: its outputs are constants too."""
    inputs = [i for i in node.input if i]
    return (bool(inputs) and node.op_type not in _NONDETERMINISTIC and not _subgraph_ops(node)
            and all(i in constants or i in unknown for i in inputs))


def _legacy_scope_name(node_name: str) -> str | None:
    """``/layer2/layer2.0/downsample/downsample.0/Conv`` -> ``layer2.0.downsample.0``."""
    parts = [p for p in node_name.split("/") if p]
    if len(parts) < 2 or not node_name.startswith("/"):
        return None
    path, prev = "", ""
    for part in parts[:-1]:
        if prev and part.startswith(prev + "."):
            path += part[len(prev):]
        else:
            path = f"{path}.{part}" if path else part
        prev = part
    return path or None


class _Walk:
    """One pass over the nodes: layers, unsupported ops, passed-over counts, notes."""

    def __init__(self, graph: _Graph) -> None:
        self.g = graph
        self.layers: list[ConvLayer] = []
        self.unsupported: list[UnsupportedOp] = []
        self.passed_over: dict[str, int] = {}
        self.notes: list[str] = []
        self.asymmetric: dict[str, dict[str, Any]] = {}
        self._names: set[str] = set()
        self._counts = {"conv": 0, "linear": 0}

    def node_label(self, node) -> str:
        return node.name or (node.output[0] if node.output else node.op_type)

    def layer_name(self, node, weight: str, kind: str) -> str:
        self._counts[kind] += 1
        origin = self.g.origin.get(weight, weight)
        m = _MODULE_WEIGHT.match(origin)
        name = (m.group(1) if m else None) or _legacy_scope_name(node.name) or node.name \
            or f"{'conv' if kind == 'conv' else 'fc'}{self._counts[kind]}"
        unique, n = name, 1
        while unique in self._names:
            n += 1
            unique = f"{name}#{n}"
        self._names.add(unique)
        return unique

    def unsupported_op(self, node, reason: str) -> None:
        self.unsupported.append(UnsupportedOp(self.node_label(node), node.op_type, reason))

    def pass_over(self, node) -> None:
        self.passed_over[node.op_type] = self.passed_over.get(node.op_type, 0) + 1

    def add(self, node, build: Callable[[], ConvLayer]) -> None:
        try:
            self.layers.append(build())
        except ConfigError as exc:
            self.unsupported_op(node, str(exc))


def _resolve_pads(node, g: _Graph, spatial: tuple[int, ...], kernel: tuple[int, ...],
                  strides: tuple[int, ...], dilations: tuple[int, ...]) -> list[tuple[int, int]]:
    """(begin, end) pads per spatial axis, with auto_pad resolved as the ONNX spec defines it."""
    n = len(spatial)
    auto_pad = g.attr(node, "auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=False):
            total = max(0, (-(-size // s) - 1) * s + d * (k - 1) + 1 - size)
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
        return out
    if auto_pad == "VALID":
        return [(0, 0)] * n
    pads = list(g.attr(node, "pads", [0] * (2 * n)))
    return [(pads[i], pads[i + n]) for i in range(n)]


def _conv(walk: _Walk, node) -> None:
    g = walk.g
    x, w = g.dims(node.input[0]), g.dims(node.input[1])
    if w is None or x is None or len(x) < 3:
        walk.unsupported_op(node, "input or weight shape unknown after shape inference; give the "
                                  "input size with --input CxHxW")
        return
    if len(w) == 5:
        walk.unsupported_op(node, f"3-D convolution (weight {list(w)}) is not supported")
        return
    one_d = len(w) == 3
    spatial = tuple(x[2:])
    if None in spatial or None in w or x[1] is None:
        walk.unsupported_op(node, f"input size {list(x)} is not fixed; give it with --input CxHxW")
        return
    kernel = tuple(g.attr(node, "kernel_shape", list(w[2:])))
    n = len(kernel)
    strides = tuple(g.attr(node, "strides", [1] * n))
    dilations = tuple(g.attr(node, "dilations", [1] * n))
    pads = _resolve_pads(node, g, spatial, kernel, strides, dilations)  # type: ignore[arg-type]
    if one_d:  # a 1-D conv is a 1 x L map with a 1 x K kernel
        spatial, kernel, strides, dilations, pads = ((1, *spatial), (1, *kernel), (1, *strides),
                                                     (1, *dilations), [(0, 0), *pads])
    padding = tuple(min(p) for p in pads)
    # spatial sizes are known here (unknown ones were refused above)
    size = tuple(cast(int, s) + abs(b - e) for s, (b, e) in zip(spatial, pads, strict=False))
    name = walk.layer_name(node, node.input[1], "conv")
    if size != spatial:
        walk.asymmetric[name] = {"pads": [list(p) for p in pads], "onnx_input_size": list(spatial),
                                 "input_size": list(size)}
    groups = int(g.attr(node, "group", 1))
    bias = len(node.input) > 2 and bool(node.input[2])

    def build() -> ConvLayer:
        # The checks onnxruntime makes before running the node: the weight must fit the input.
        if groups < 1:
            raise ConfigError(f"group must be >= 1, got {groups}")
        # Known sizes: unknown ones were refused above.
        channels, w_out, w_in = cast(int, x[1]), cast(int, w[0]), cast(int, w[1])
        if channels != w_in * groups or w_out % groups:
            raise ConfigError(f"weight {list(w)} with group={groups} does not fit the input's "
                              f"{x[1]} channels (needs weight dim 1 x group = input channels and "
                              f"weight dim 0 divisible by group)")
        if tuple(kernel) != tuple(w[2:]):
            raise ConfigError(f"kernel_shape {list(kernel)} differs from the weight's {list(w[2:])}")
        layer = ConvLayer(name, int(x[1]), int(w[0]), kernel, input_size=size, stride=strides,  # type: ignore[arg-type]
                          padding=cast("tuple[int, int]", padding), dilation=dilations, groups=groups,
                          bias=bias)
        y = g.shapes.get(node.output[0])
        if y and None not in y[2:] and tuple(y[-2:] if not one_d else (1, y[-1])) != layer.output_size():
            raise ConfigError(f"layer {name!r}: computed output {layer.output_size()} differs from the "
                              f"ONNX shape inference {list(y)}")
        return layer

    walk.add(node, build)


def _linear(walk: _Walk, node, x: Shape | None, weight: str, in_features: int, out_features: int,
            bias: bool) -> None:
    positions = 1
    if x is not None and len(x) > 2:
        inner = x[1:-1]
        if None in inner:
            walk.unsupported_op(node, f"activation shape {list(x)} is not fixed; give --input CxHxW")
            return
        positions = 1
        for d in inner:
            positions *= int(d)  # type: ignore[arg-type]
    name = walk.layer_name(node, weight, "linear")
    walk.add(node, lambda: ConvLayer(name, in_features, out_features, 1, input_size=(positions, 1),
                                     kind="linear", bias=bias))


def _unknown_weight(walk: _Walk, node, name: str) -> bool:
    if name in walk.g.unknown:
        walk.unsupported_op(node, f"weight {name!r} is computed from constants but shape inference "
                                  f"could not give its shape")
        return True
    return False


def _gemm(walk: _Walk, node) -> None:
    g = walk.g
    a, b = node.input[0], node.input[1]
    if _unknown_weight(walk, node, b):
        return
    if b not in g.constants:
        walk.pass_over(node)
        walk.notes.append(f"Gemm {walk.node_label(node)!r}: B is an activation, not a weight; passed over")
        return
    wb = g.constants[b]
    if len(wb) != 2:
        walk.unsupported_op(node, f"Gemm weight of rank {len(wb)}")
        return
    k, n = (wb[1], wb[0]) if g.attr(node, "transB", 0) else (wb[0], wb[1])
    xa = g.dims(a)
    if xa is not None and len(xa) != 2:
        walk.unsupported_op(node, f"Gemm input A of shape {list(xa)} is not a matrix")
        return
    ka = None if xa is None else (xa[0] if g.attr(node, "transA", 0) else xa[1])
    if ka is not None and ka != k:
        walk.unsupported_op(node, f"Gemm weight {list(wb)} (transB={g.attr(node, 'transB', 0)}) "
                                  f"needs {k} input features, but input A {list(xa)} "  # type: ignore[arg-type]
                                  f"(transA={g.attr(node, 'transA', 0)}) gives {ka}")
        return
    bias = len(node.input) > 2 and bool(node.input[2])
    _linear(walk, node, None, b, int(k), int(n), bias)


def _matmul(walk: _Walk, node) -> None:
    g = walk.g
    a, b = node.input[0], node.input[1]
    if _unknown_weight(walk, node, b):
        return
    if b not in g.constants:
        if a in g.constants:
            walk.unsupported_op(node, "constant on the left of MatMul (W @ x) is not supported")
        else:  # activation x activation (attention scores): no weights to program
            walk.pass_over(node)
        return
    wb = g.constants[b]
    if len(wb) != 2:
        walk.unsupported_op(node, f"MatMul with a constant of rank {len(wb)} (batched weights) is not "
                                  f"supported")
        return
    xa = g.dims(a)
    if xa is not None and xa and xa[-1] is not None and xa[-1] != wb[0]:
        walk.unsupported_op(node, f"MatMul weight {list(wb)} needs {wb[0]} input features, but the "
                                  f"input {list(xa)} gives {xa[-1]}")
        return
    _linear(walk, node, g.dims(a), b, int(wb[0]), int(wb[1]), False)


# ONNX operator -> handler that records its weight layer; every other operator goes to _other.
_HANDLERS: Registry[Callable[[_Walk, Any], None]] = Registry(
    "ONNX weight operator", {"Conv": _conv, "Gemm": _gemm, "MatMul": _matmul})


def _subgraph_ops(node) -> set[str]:
    from onnx import AttributeProto

    ops: set[str] = set()
    for a in node.attribute:
        graphs = [a.g] if a.type == AttributeProto.GRAPH else list(a.graphs)
        for sub in graphs:
            for inner in sub.node:
                ops.add(inner.op_type)
                ops |= _subgraph_ops(inner)
    return ops


def _other(walk: _Walk, node) -> None:
    inner = _subgraph_ops(node) & (set(_HANDLERS.names()) | set(UNSUPPORTED_WEIGHT_OPS))
    if inner:
        walk.unsupported_op(node, f"control flow with weight operators inside ({', '.join(sorted(inner))}) "
                                  f"is not supported")
        return
    if node.op_type in UNSUPPORTED_WEIGHT_OPS:
        walk.unsupported_op(node, UNSUPPORTED_WEIGHT_OPS[node.op_type])
        return
    if node.op_type in WEIGHTLESS_OPS:
        walk.pass_over(node)
        return
    weights = [(i, walk.g.constants[i]) for i in node.input if i in walk.g.constants
               and len(walk.g.constants[i]) >= 2]
    if weights:
        desc = ", ".join(f"{i} {list(d)}" for i, d in weights)
        walk.unsupported_op(node, f"operator with weight tensor(s) {desc} is not supported")
    else:
        walk.pass_over(node)


def import_onnx(path: str, input_shape: tuple[int, ...] | None = None, name: str | None = None) -> OnnxImport:
    """Read an ONNX file and list its mappable layers, unsupported operators and passed-over ones.

    ``input_shape`` (C, H, W) fixes the model input (batch 1) when the file's sizes are symbolic.
    """
    model = _read_model(path)
    if input_shape is not None:
        _set_input_shape(model, tuple(input_shape), path)
    graph = _Graph(_infer(model, path), path)
    walk = _Walk(graph)
    for node in model.graph.node:  # subgraphs (If/Loop bodies) are checked by _other
        _HANDLERS.get(node.op_type, _other)(walk, node)
    for layer_name, info in walk.asymmetric.items():
        walk.notes.append(f"{layer_name}: asymmetric pads {info['pads']} -> input {info['input_size']} "
                          f"with padding min(begin, end); output size unchanged")
    network = None
    if walk.layers:
        first = graph.shapes.get(graph.graph_inputs[0]) if graph.graph_inputs else None
        in_shape = (tuple(int(cast(int, d)) for d in first[1:]) if first and None not in first[1:]
                    else None)
        meta = {"onnx": {"opset": [f"{o.domain or 'ai.onnx'}:{o.version}" for o in model.opset_import],
                         "producer": f"{model.producer_name} {model.producer_version}".strip(),
                         "passed_over": dict(walk.passed_over), "asymmetric_pads": walk.asymmetric,
                         "unsupported": [u.to_dict() for u in walk.unsupported]}}
        network = Network(name or os.path.splitext(os.path.basename(path))[0], tuple(walk.layers),
                          input_shape=in_shape, source=path, meta=meta)
    return OnnxImport(path, network, tuple(walk.unsupported), dict(walk.passed_over), tuple(walk.notes))


def load_onnx(path: str, input_shape: tuple[int, ...] | None = None) -> Network:
    """The :func:`imcflow.networks.load_network` loader: the network, or one error listing every
    operator that cannot be mapped."""
    return import_onnx(path, input_shape).require_all_mappable()
