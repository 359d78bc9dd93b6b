"""The conv/linear layer record and the network record (torch-free; re-exported by :mod:`imcflow.layers`).

Field names follow ``torch.nn.Conv2d``. A linear layer is a 1x1 convolution on a 1x1 map; a grouped
convolution is ``groups`` independent convolutions of ``in_channels/groups -> out_channels/groups``.
These records are pure data (no torch), validated when built. A :class:`Network` holds any layer record
(:data:`imcflow.layers.AnyLayer`: a :class:`ConvLayer` or a composite layer such as
:class:`~imcflow.layers.lowrank.LowRankLayer`).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from imcflow.errors import ConfigError
from imcflow.validate import MAX_LAYER_FIELD, check_int

if TYPE_CHECKING:
    from imcflow.layers import AnyLayer

Pair = tuple[int, int]
LayerKind = Literal["conv", "linear"]


def as_pair(value: Pair | int) -> Pair:
    """A pair field as a pair. Fields are typed ``Pair | int`` for the constructor and normalised to a
    pair when the record is built, so this only tells the type checker what is already true.

    >>> as_pair((3, 1)), as_pair(2)
    ((3, 1), (2, 2))
    """
    return value if isinstance(value, tuple) else (value, value)
def _field(field_name: str, value: object, minimum: int, where: str) -> int:
    # The minimum first, so its message stays "must be >= 1"; then the 31-bit ceiling.
    value = check_int(field_name, value, minimum, where=where)
    return value if value <= MAX_LAYER_FIELD else check_int(field_name, value, None, MAX_LAYER_FIELD,
                                                            where=where)


def _pair(field_name: str, value: int | Sequence[int], minimum: int, where: str) -> Pair:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConfigError(f"{where}: {field_name} must be one integer or a pair, got {value!r}")
        a, b = value
    else:
        a = b = value
    return (_field(field_name, a, minimum, where), _field(field_name, b, minimum, where))


class LayerShape:
    """The paper notation (mapping.md: H, W, Kh, Kw, IC, OC), per-group channels and the kernel extent,
    read from the torch-style shape fields every layer record has (ConvLayer, composite layers)."""

    in_channels: int
    out_channels: int
    kernel_size: Pair | int
    input_size: Pair | int
    dilation: Pair | int
    groups: int

    @property
    def H(self) -> int:  # noqa: N802 - paper notation
        return as_pair(self.input_size)[0]

    @property
    def W(self) -> int:  # noqa: N802
        return as_pair(self.input_size)[1]

    @property
    def Kh(self) -> int:  # noqa: N802
        return as_pair(self.kernel_size)[0]

    @property
    def Kw(self) -> int:  # noqa: N802
        return as_pair(self.kernel_size)[1]

    @property
    def IC(self) -> int:  # noqa: N802
        return self.in_channels

    @property
    def OC(self) -> int:  # noqa: N802
        return self.out_channels

    @property
    def group_in_channels(self) -> int:
        return self.in_channels // self.groups

    @property
    def group_out_channels(self) -> int:
        return self.out_channels // self.groups

    @property
    def kernel_extent(self) -> Pair:
        """Input pixels one (dilated) kernel spans along H and W."""
        (kh, kw), (dh, dw) = as_pair(self.kernel_size), as_pair(self.dilation)
        return dh * (kh - 1) + 1, dw * (kw - 1) + 1


@dataclass(frozen=True)
class ConvLayer(LayerShape):
    """One weight layer as the crossbar sees it.

    >>> layer = ConvLayer("conv1", 3, 64, 3, input_size=(32, 32), padding=1)
    >>> layer.output_size()
    (32, 32)
    >>> layer.macs
    1769472
    """

    name: str
    in_channels: int
    out_channels: int
    kernel_size: Pair | int
    input_size: Pair | int = (1, 1)
    stride: Pair | int = 1
    padding: Pair | int = 0
    dilation: Pair | int = 1
    groups: int = 1
    kind: LayerKind = "conv"
    bias: bool = False

    def __post_init__(self) -> None:
        where = f"layer {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"layer name must be a non-empty string, got {self.name!r}")
        set_ = object.__setattr__
        # Stored as plain ints (numpy integers converted): products such as macs never overflow.
        for name in ("in_channels", "out_channels", "groups"):
            set_(self, name, _field(name, getattr(self, name), 1, where))
        set_(self, "kernel_size", _pair("kernel_size", self.kernel_size, 1, where))
        set_(self, "input_size", _pair("input_size", self.input_size, 1, where))
        set_(self, "stride", _pair("stride", self.stride, 1, where))
        set_(self, "padding", _pair("padding", self.padding, 0, where))
        set_(self, "dilation", _pair("dilation", self.dilation, 1, where))
        if self.kind not in ("conv", "linear"):
            raise ConfigError(f"{where}: kind must be 'conv' or 'linear', got {self.kind!r}")
        for ch in ("in_channels", "out_channels"):
            if getattr(self, ch) % self.groups:
                raise ConfigError(
                    f"{where}: {ch}={getattr(self, ch)} is not divisible by groups={self.groups}")
        for axis, (size, pad, ext) in enumerate(zip(as_pair(self.input_size), as_pair(self.padding),
                                                    self.kernel_extent, strict=True)):
            if size + 2 * pad < ext:
                dim = "H" if axis == 0 else "W"
                raise ConfigError(
                    f"{where}: kernel extent {ext} along {dim} is larger than the padded input "
                    f"{size}+2*{pad}={size + 2 * pad}; allowed: kernel extent <= input + 2*padding")

    def output_size(self, geometry: str = "real") -> Pair:
        """Output map (Ho, Wo).

        ``real``: floor((H + 2p - d(K-1) - 1)/s) + 1. ``paper``: the published tables' stride-1 valid
        convolution on the listed H x W, Ho = H - Kh + 1 (mapping.md section 2).
        """
        if geometry == "paper":
            return (max(self.H - self.Kh + 1, 1), max(self.W - self.Kw + 1, 1))
        if geometry != "real":
            raise ConfigError(f"geometry must be 'real' or 'paper', got {geometry!r}")
        (h, w), (ph, pw), (eh, ew), (sh, sw) = (as_pair(self.input_size), as_pair(self.padding),
                                                 self.kernel_extent, as_pair(self.stride))
        return (h + 2 * ph - eh) // sh + 1, (w + 2 * pw - ew) // sw + 1

    @property
    def weight_count(self) -> int:
        return self.out_channels * self.group_in_channels * self.Kh * self.Kw

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one inference (real geometry)."""
        ho, wo = self.output_size("real")
        return ho * wo * self.weight_count

    def with_changes(self, **changes: Any) -> ConvLayer:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind,
            "H": self.H, "W": self.W, "IC": self.IC, "OC": self.OC, "Kh": self.Kh, "Kw": self.Kw,
            "stride": list(as_pair(self.stride)), "padding": list(as_pair(self.padding)),
            "dilation": list(as_pair(self.dilation)), "groups": self.groups, "bias": self.bias,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConvLayer:
        """Inverse of :meth:`to_dict` (also accepts torch-style field names)."""
        def pick(*keys: str, default: Any = None) -> Any:
            for k in keys:
                if k in d:
                    return d[k]
            return default
        name = pick("name", default="layer")
        try:
            return cls(
                name=name,
                in_channels=pick("IC", "in_channels"),
                out_channels=pick("OC", "out_channels"),
                kernel_size=pick("kernel_size", default=(pick("Kh", default=1), pick("Kw", default=1))),
                input_size=pick("input_size", default=(pick("H", default=1), pick("W", default=1))),
                stride=pick("stride", default=1), padding=pick("padding", default=0),
                dilation=pick("dilation", default=1), groups=pick("groups", default=1),
                kind=pick("kind", default="conv"), bias=bool(pick("bias", default=False)),
            )
        except TypeError as exc:
            raise ConfigError(f"layer {name!r}: {exc}") from None


def linear_layer(name: str, in_features: int, out_features: int, bias: bool = False) -> ConvLayer:
    """A fully connected layer as a 1x1 convolution on a 1x1 map."""
    return ConvLayer(name, in_features, out_features, 1, input_size=1, kind="linear", bias=bias)


def parse_layer_spec(text: str, name: str = "layer") -> ConvLayer:
    """Parse ``"H,W,Kh,Kw,IC,OC[,stride[,padding[,groups]]]"`` (the CLI's ``--layer``).

    >>> parse_layer_spec("56,56,3,3,64,64,1,1").padding
    (1, 1)
    """
    parts = [p.strip() for p in text.split(",")]
    fields = ["H", "W", "Kh", "Kw", "IC", "OC", "stride", "padding", "groups"]
    if not 6 <= len(parts) <= 9:
        raise ConfigError(
            f"--layer {text!r}: expected 6 to 9 comma-separated integers "
            f"H,W,Kh,Kw,IC,OC[,stride[,padding[,groups]]], got {len(parts)}")
    values = []
    for f, p in zip(fields, parts, strict=False):  # the optional trailing fields may be absent
        try:
            values.append(int(p))
        except ValueError:
            raise ConfigError(f"--layer {text!r}: field {f} must be an integer, got {p!r}") from None
    v = dict(zip(fields, values, strict=False))
    return ConvLayer(name, v["IC"], v["OC"], (v["Kh"], v["Kw"]), input_size=(v["H"], v["W"]),
                     stride=v.get("stride", 1), padding=v.get("padding", 0), groups=v.get("groups", 1))


@dataclass(frozen=True)
class Network:
    """An ordered list of weight layers (any layer record, composite ones included), with where it
    came from."""

    name: str
    layers: tuple[AnyLayer, ...]
    input_shape: tuple[int, ...] | None = None
    source: str = ""
    geometry: str = "real"
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ConfigError(f"network {self.name!r} has no conv or linear layers to map")
        if self.geometry not in ("real", "paper"):
            raise ConfigError(f"network {self.name!r}: geometry must be 'real' or 'paper', "
                              f"got {self.geometry!r}")
        seen: set[str] = set()
        repeated: set[str] = set()
        for l in self.layers:  # one pass: a set, not list.count per name (quadratic)
            (repeated if l.name in seen else seen).add(l.name)
        dup = sorted(repeated)
        if dup:
            raise ConfigError(f"network {self.name!r}: duplicate layer names {dup}")

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def layer(self, name: str) -> AnyLayer:
        for l in self.layers:
            if l.name == name:
                return l
        raise ConfigError(f"network {self.name!r} has no layer {name!r}")

    @property
    def weight_count(self) -> int:
        return sum(l.weight_count for l in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "input_shape": list(self.input_shape) if self.input_shape else None,
                "geometry": self.geometry, "source": self.source,
                "layers": [l.to_dict() for l in self.layers]}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([l.to_dict() for l in self.layers])


def as_network(network: object, name: str = "layers") -> Network:
    """``network`` itself if it is a :class:`Network`, else a Network of its layers (a list or tuple
    of layer records); anything else is refused with a hint (a model name must be loaded first).

    >>> as_network([ConvLayer("c", 1, 1, 1)]).name
    'layers'
    """
    if isinstance(network, Network):
        return network
    if isinstance(network, (list, tuple)):
        return Network(name, tuple(network))
    hint = (f"; load it first with load_network({network!r})" if isinstance(network, str)
            else "; build one with load_network(...) or pass a list of ConvLayer")
    raise ConfigError(f"network must be a Network or a list of layers, got {type(network).__name__} "
                      f"{network!r}"[:300] + hint)


def network_from_layers(layers: Iterable[AnyLayer], name: str = "layers", geometry: str = "real",
                        source: str = "") -> Network:
    return Network(name=name, layers=tuple(layers), geometry=geometry, source=source)
