"""Hardware presets: per-component constants of a crossbar accelerator, each with its source.

A preset is a YAML file (the built-in ones ship in ``imcflow/hardware/presets/``) whose leaves are
``{value: X, source: "..."}``: every constant says where it comes from, and a derived constant says how
it was derived. :func:`load_preset` validates the file against :data:`SCHEMA` (unknown sections or keys,
missing keys, wrong types and negative values are :class:`~imcflow.errors.ConfigError` naming the key),
and :func:`apply_overrides` applies ``"adc.bits=6"``-style overrides from the command line.

Area constants may be ``null`` when the source does not report them; areas computed from such a preset
are then reported as unknown (``None``) instead of being invented.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import yaml

from imcflow.errors import ConfigError, FormatError, UnknownNameError
from imcflow.registry import Registry
from imcflow.validate import check_bits

Kind = Literal["int", "float", "bool", "str"]


@dataclass(frozen=True)
class Constant:
    """What one preset key may hold: its type, whether ``null`` is allowed, its unit and meaning."""

    kind: Kind
    doc: str
    nullable: bool = False
    minimum: float = 0.0
    bits: str | None = None  # a bit width: bounded by imcflow.validate.BIT_LIMITS[bits]


def _c(kind: Kind, doc: str, nullable: bool = False, minimum: float = 0.0,
       bits: str | None = None) -> Constant:
    return Constant(kind, doc, nullable, minimum, bits)


# section -> key -> what it holds. Units are in the key names (_j, _s, _mm2).
SCHEMA: dict[str, dict[str, Constant]] = {
    "defaults": {
        "cell_bits": _c("int", "bits stored per cell (used unless --cell-bits is given)", minimum=1,
                        bits="cell_bits"),
        "weight_bits": _c("int", "weight precision (used unless --weight-bits is given)", minimum=1,
                          bits="weight_bits"),
        "input_bits": _c("int", "activation precision (used unless --input-bits is given)", minimum=1,
                         bits="input_bits"),
    },
    "array": {
        "energy_per_cell_read_j": _c("float", "energy of one cell on a driven row and sensed column, "
                                              "per input step"),
        "area_per_cell_mm2": _c("float", "crossbar area per cell", nullable=True),
        "read_time_s": _c("float", "time of one crossbar read (one input step)"),
    },
    "dac": {
        "bits": _c("int", "input bits applied per step; steps = ceil(input_bits / dac.bits)", minimum=1,
                   bits="dac_bits"),
        "energy_per_drive_j": _c("float", "energy of driving one word line for one step"),
        "area_mm2": _c("float", "area of one row driver/DAC (one per row)", nullable=True),
    },
    "sample_hold": {
        "energy_per_sample_j": _c("float", "energy of sampling one physical column for one step"),
        "area_mm2": _c("float", "area of one sample-and-hold (one per physical column)", nullable=True),
    },
    "adc": {
        "bits": _c("int", "ADC resolution used", minimum=1, bits="adc_bits"),
        "reference_bits": _c("int", "resolution at which the energy/area below were reported", minimum=1,
                             bits="adc_bits"),
        "energy_per_conversion_j": _c("float", "energy of one conversion at reference_bits"),
        "area_mm2": _c("float", "area of one ADC at reference_bits", nullable=True),
        "conversion_time_s": _c("float", "time of one conversion"),
        "columns_per_adc": _c("int", "physical columns sharing one ADC", minimum=1),
        "slices_merged": _c("bool", "true when a weight's slice columns are combined in analog before "
                                    "one conversion; false when every physical column is converted"),
        "energy_scaling": _c("str", "how energy scales with bits: walden (2^bits) or linear (bits)"),
        "area_scaling": _c("str", "how area scales with bits: walden (2^bits) or linear (bits)"),
    },
    "shift_add": {
        "energy_per_op_j": _c("float", "energy of shifting and adding one converted sample"),
        "area_mm2": _c("float", "area of one shift-and-add unit", nullable=True),
        "units_per_array": _c("float", "shift-and-add units per crossbar"),
    },
    "accumulator": {
        "energy_per_op_j": _c("float", "energy of adding one partial sum of another row tile"),
        "area_mm2": _c("float", "area of one accumulator unit", nullable=True),
        "units_per_array": _c("float", "accumulator units per crossbar"),
    },
    "input_buffer": {
        "energy_per_bit_j": _c("float", "energy of reading one input bit into an array's rows"),
        "area_per_bit_mm2": _c("float", "area per bit; one input word per row per array",
                               nullable=True),
    },
    "output_buffer": {
        "energy_per_bit_j": _c("float", "energy of writing one output bit of an activation"),
        "area_per_bit_mm2": _c("float", "area per bit; one output word per usable column per array",
                               nullable=True),
    },
    "timing": {
        "pipelined": _c("bool", "true: a read overlaps the conversions of the previous step "
                                "(step time = max); false: step time = read + conversions"),
    },
}

_TOP_LEVEL = {"name", "description", "source", "technology", "sections"}
#: How ADC energy or area scales with ``adc.bits`` against ``adc.reference_bits`` (the one list of law
#: names: presets are validated against it, the cost model applies it). ``walden``: x 2^(bits - ref),
#: the Walden figure of merit E = FOM * 2^ENOB; ``linear``: x bits / ref.
ADC_SCALING_LAWS: Registry[Callable[[int, int], float]] = Registry("ADC scaling law", {
    "walden": lambda bits, ref: 2.0 ** (bits - ref),
    "linear": lambda bits, ref: bits / ref,
})


@dataclass(frozen=True)
class HardwarePreset:
    """A validated preset: ``values['adc.bits']`` etc. and ``sources`` with the same keys."""

    name: str
    description: str
    source: str
    technology: str
    values: Mapping[str, Any] = field(hash=False)
    sources: Mapping[str, str] = field(hash=False)
    path: str = ""

    def __getitem__(self, key: str) -> Any:
        try:
            return self.values[key]
        except KeyError:
            raise UnknownNameError(f"preset {self.name!r} has no key {key!r}; known: "
                                   f"{', '.join(self.values)}") from None

    def get(self, section: str, key: str) -> Any:
        return self[f"{section}.{key}"]

    def to_dict(self) -> dict[str, Any]:
        sections: dict[str, dict[str, Any]] = {}
        for dotted, value in self.values.items():
            sec, key = dotted.split(".", 1)
            sections.setdefault(sec, {})[key] = {"value": value, "source": self.sources[dotted]}
        return {"name": self.name, "description": self.description, "source": self.source,
                "technology": self.technology, **sections}


def _check_value(dotted: str, raw: Any, spec: Constant, where: str) -> Any:
    if raw is None:
        if spec.nullable:
            return None
        raise ConfigError(f"{where}: {dotted} must not be null (only area constants may be)")
    if spec.kind == "bool":
        if not isinstance(raw, bool):
            raise ConfigError(f"{where}: {dotted} must be true or false, got {raw!r}")
        return raw
    if spec.kind == "str":
        if dotted.endswith("_scaling") and raw not in ADC_SCALING_LAWS:
            raise ConfigError(f"{where}: {dotted} must be one of {', '.join(ADC_SCALING_LAWS.names())}, "
                              f"got {raw!r}")
        return str(raw)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ConfigError(f"{where}: {dotted} must be a number, got {raw!r}")
    if spec.kind == "int" and (not float(raw).is_integer()):
        raise ConfigError(f"{where}: {dotted} must be an integer, got {raw!r}")
    if not math.isfinite(raw):
        raise ConfigError(f"{where}: {dotted} must be finite, got {raw!r}")
    if raw < spec.minimum:
        what = "negative" if raw < 0 else f"below {spec.minimum:g}"
        raise ConfigError(f"{where}: {dotted} is {what} ({raw!r}); allowed: >= {spec.minimum:g}")
    if spec.bits:
        return check_bits(dotted, raw, spec.bits, where=where)
    return int(raw) if spec.kind == "int" else float(raw)


def preset_from_dict(data: Mapping[str, Any], where: str = "preset") -> HardwarePreset:
    """Validate a parsed preset document (see the module docstring) and build the preset."""
    if not isinstance(data, Mapping):
        raise FormatError(f"{where}: a preset must be a mapping of sections, got {type(data).__name__}")
    for meta in ("name", "source"):
        if not isinstance(data.get(meta), str) or not data.get(meta):
            raise FormatError(f"{where}: top-level {meta!r} must be a non-empty string")
    unknown = sorted(set(data) - _TOP_LEVEL - set(SCHEMA))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)}; known: "
                          f"{', '.join(SCHEMA)}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for sec, keys in SCHEMA.items():
        body = data.get(sec)
        if not isinstance(body, Mapping):
            raise ConfigError(f"{where}: section {sec!r} is missing or not a mapping")
        extra = sorted(set(body) - set(keys))
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(f'{sec}.{k}' for k in extra)}; "
                              f"known in {sec}: {', '.join(keys)}")
        for key, spec in keys.items():
            dotted = f"{sec}.{key}"
            if key not in body:
                raise ConfigError(f"{where}: missing key {dotted} ({spec.doc})")
            leaf = body[key]
            if not isinstance(leaf, Mapping) or set(leaf) != {"value", "source"}:
                raise FormatError(f"{where}: {dotted} must be {{value: ..., source: '...'}}, "
                                  f"got {leaf!r}")
            if not isinstance(leaf["source"], str) or not leaf["source"].strip():
                raise FormatError(f"{where}: {dotted} needs a non-empty source string")
            values[dotted] = _check_value(dotted, leaf["value"], spec, where)
            sources[dotted] = leaf["source"].strip()
    _check_consistency(values, where)
    return HardwarePreset(data["name"], str(data.get("description", "")), data["source"],
                          str(data.get("technology", "")), values, sources)


def _check_consistency(values: Mapping[str, Any], where: str) -> None:
    if values["array.read_time_s"] <= 0 and values["adc.conversion_time_s"] <= 0:
        raise ConfigError(f"{where}: array.read_time_s and adc.conversion_time_s are both 0; at least "
                          f"one must be > 0 or latency is zero")


def preset_dir() -> str:
    return str(resources.files("imcflow.hardware") / "presets")


#: Preset name -> YAML file: the shipped presets (file stems in ``hardware/presets``, sorted), then
#: any added with :func:`register_preset`.
PRESETS: Registry[str] = Registry("preset", {
    f[:-5]: os.path.join(preset_dir(), f) for f in sorted(os.listdir(preset_dir())) if f.endswith(".yaml")})


def register_preset(name: str, path: str, *, replace: bool = False) -> str:
    """Make the preset YAML file ``path`` loadable by ``name`` (``imcflow cost --preset NAME``)."""
    return PRESETS.register(name, path, replace=replace)


def preset_names() -> list[str]:
    """Names of the registered presets: those shipped with imcflow (sorted), then any registered."""
    return PRESETS.names()


def load_preset(name_or_path: str, overrides: Iterable[str] = ()) -> HardwarePreset:
    """Load a built-in preset by name or a YAML file by path, then apply ``key=value`` overrides.

    >>> p = load_preset("isaac", ["adc.bits=6"])
    >>> p["adc.bits"], p.sources["adc.bits"]
    (6, 'override: adc.bits=6')
    """
    if os.path.exists(name_or_path) and not os.path.isdir(name_or_path):
        path = name_or_path
    elif name_or_path in preset_names():
        path = PRESETS.get(name_or_path)
    else:
        raise UnknownNameError(f"unknown preset {name_or_path!r}: not a file and not a registered "
                               f"name; known: {', '.join(preset_names())}")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise FormatError(f"preset file {path}: not valid YAML: {exc}") from None
    preset = preset_from_dict(data, where=f"preset {os.path.basename(path)}")
    preset = HardwarePreset(preset.name, preset.description, preset.source, preset.technology,
                            preset.values, preset.sources, path)
    return apply_overrides(preset, overrides)


def parse_override(text: str) -> tuple[str, Any]:
    """``"adc.bits=6"`` -> ``("adc.bits", 6)``; the value is read as YAML (numbers, true/false)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. adc.bits=6")
    key, raw = (s.strip() for s in text.split("=", 1))
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(preset: HardwarePreset, overrides: Iterable[str]) -> HardwarePreset:
    """Return a copy of ``preset`` with ``KEY=VALUE`` overrides applied and re-validated."""
    overrides = list(overrides)
    if not overrides:
        return preset
    values, sources = dict(preset.values), dict(preset.sources)
    for text in overrides:
        key, value = parse_override(text)
        sec, _, name = key.partition(".")
        if sec not in SCHEMA or name not in SCHEMA[sec]:
            known = ", ".join(f"{s}.{k}" for s, ks in SCHEMA.items() for k in ks)
            raise ConfigError(f"--set {text!r}: unknown key {key!r}; known: {known}")
        values[key] = _check_value(key, value, SCHEMA[sec][name], where=f"--set {text!r}")
        sources[key] = f"override: {key}={text.split('=', 1)[1].strip()}"
    _check_consistency(values, where="--set")
    return HardwarePreset(preset.name, preset.description, preset.source, preset.technology, values,
                          sources, preset.path)
