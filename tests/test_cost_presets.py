"""Preset files: both built-ins load, every constant cites a source, and bad input names its key."""
from __future__ import annotations

import copy

import pytest
import yaml

from imcflow.errors import ConfigError, FormatError, UnknownNameError
from imcflow.hardware.physics import cell_area_problem, min_cell_area_mm2
from imcflow.hardware.preset import (
    SCHEMA,
    apply_overrides,
    load_preset,
    preset_dir,
    preset_from_dict,
    preset_names,
)

# ISAAC Table 1's own array area (0.0002 mm2 per 8 x 128 x 128 cells), below 4F^2 at 32 nm.
ISAAC_TABLE1_CELL_AREA = "array.area_per_cell_mm2=1.52587890625e-09"


def raw(name: str = "isaac") -> dict:
    with open(f"{preset_dir()}/{name}.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def test_builtins_load_with_sources():
    assert {"isaac", "sram-dong2020"} <= set(preset_names())
    for name in preset_names():
        p = load_preset(name)
        expected = {f"{s}.{k}" for s, ks in SCHEMA.items() for k in ks}
        assert set(p.values) == expected == set(p.sources)
        assert all(len(src) > 10 for src in p.sources.values())


def test_isaac_constants_match_table1():
    p = load_preset("isaac")
    # ISAAC Table 1: 8 ADCs, 16 mW, 0.0096 mm2, 1.28 GS/s -> per ADC per conversion.
    assert p["adc.energy_per_conversion_j"] == pytest.approx(16e-3 / 8 / 1.28e9)
    assert p["adc.area_mm2"] * 8 == pytest.approx(0.0096)
    assert p["dac.area_mm2"] * 8 * 128 == pytest.approx(0.00017)
    # Table 1's array area is below the 4F^2 floor at 32 nm: the preset uses the floor instead.
    table1 = load_preset("isaac", [ISAAC_TABLE1_CELL_AREA])
    assert table1["array.area_per_cell_mm2"] * 8 * 128 * 128 == pytest.approx(0.0002)
    assert cell_area_problem(table1) is not None and "1.49 F^2" in cell_area_problem(table1)
    assert p["array.area_per_cell_mm2"] == pytest.approx(4 * (32e-6) ** 2)


def test_every_builtin_cell_is_at_least_4f2():
    for name in preset_names():
        p = load_preset(name)
        assert cell_area_problem(p) is None, name
        floor = min_cell_area_mm2(p.technology)
        if floor is not None and p["array.area_per_cell_mm2"] is not None:
            assert p["array.area_per_cell_mm2"] >= floor


def test_override_changes_value_and_source():
    p = load_preset("isaac", ["adc.bits=6", "timing.pipelined=false"])
    assert p["adc.bits"] == 6 and p["timing.pipelined"] is False
    assert p.sources["adc.bits"] == "override: adc.bits=6"
    assert load_preset("isaac")["adc.bits"] == 8  # the built-in is untouched


@pytest.mark.parametrize("override, fragment", [
    ("adc.bitz=6", "adc.bitz"),
    ("nosuch.key=1", "nosuch.key"),
    ("adc.bits=-2", "adc.bits"),
    ("array.read_time_s=-1e-9", "array.read_time_s"),
    ("adc.bits=0", "adc.bits"),
    ("adc.bits=6.5", "adc.bits"),
    ("timing.pipelined=3", "timing.pipelined"),
    ("adc.energy_scaling=cubic", "adc.energy_scaling"),
    ("adc.bits", "KEY=VALUE"),
])
def test_bad_overrides_name_the_key(override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_preset("isaac", [override])


def test_unknown_key_in_file(tmp_path):
    data = raw()
    data["adc"]["speed"] = {"value": 1, "source": "x"}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"adc\.speed"):
        load_preset(str(path))


def test_negative_value_in_file(tmp_path):
    data = raw()
    data["dac"]["energy_per_drive_j"]["value"] = -1e-15
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"dac\.energy_per_drive_j.*negative"):
        load_preset(str(path))


@pytest.mark.parametrize("mutate, error, fragment", [
    (lambda d: d["adc"].pop("bits"), ConfigError, r"missing key adc\.bits"),
    (lambda d: d["adc"]["bits"].pop("source"), FormatError, r"adc\.bits"),
    (lambda d: d["adc"]["bits"].update(source=" "), FormatError, r"adc\.bits"),
    (lambda d: d.pop("timing"), ConfigError, "timing"),
    (lambda d: d.update(extra={}), ConfigError, "extra"),
    (lambda d: d["array"]["read_time_s"].update(value=None), ConfigError, r"array\.read_time_s"),
    (lambda d: d["adc"]["bits"].update(value="eight"), ConfigError, r"adc\.bits"),
    (lambda d: d.pop("source"), FormatError, "source"),
])
def test_malformed_documents(mutate, error, fragment):
    data = copy.deepcopy(raw())
    mutate(data)
    with pytest.raises(error, match=fragment):
        preset_from_dict(data)


def test_null_area_allowed_and_user_file(tmp_path):
    data = raw("isaac")
    data["name"] = "mine"
    data["adc"]["area_mm2"]["value"] = None
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    p = load_preset(str(path))
    assert p.name == "mine" and p["adc.area_mm2"] is None


def test_unknown_preset_name_lists_known():
    with pytest.raises(UnknownNameError, match="isaac"):
        load_preset("nope")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("adc: [unclosed")
    with pytest.raises(FormatError, match="YAML"):
        load_preset(str(path))


def test_to_dict_roundtrip():
    p = load_preset("sram-dong2020")
    again = preset_from_dict(p.to_dict())
    assert dict(again.values) == dict(p.values) and dict(again.sources) == dict(p.sources)


def test_apply_overrides_is_noop_without_overrides():
    p = load_preset("isaac")
    assert apply_overrides(p, []) is p
