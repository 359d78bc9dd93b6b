"""What a person reads in the terminal: the compact map table, preset values with units, one JSON
schema for cost, and a note where methods coincide (item 9 of issue 18)."""
from __future__ import annotations

import json

from imcflow.cli import main
from imcflow.cost import CostSettings, cost_mapping
from imcflow.hardware.array import ArraySpec
from imcflow.hardware.preset import load_preset
from imcflow.layers import ConvLayer
from imcflow.mapping import map_network
from imcflow.networks import load_network
from imcflow.report.mapping_report import coincidence_note
from imcflow.report.plots import methods_plot_title
from imcflow.report.table import engineering, unit_of


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_map_prints_a_compact_table_by_default_and_the_full_one_with_detail(capsys):
    code, out, _ = run(capsys, "map", "resnet18", "--array", "512x512")
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines if not line.startswith("Speedups")) <= 120
    header = next(line for line in lines if line.startswith("layer "))
    assert header.split() == ["layer", "shape", "(HxW", "KhxKwxICxOC)", "im2col", "SDK", "VW-SDK", "flex",
                              "best", "cycles/LB"]
    conv1 = next(line for line in lines if line.startswith("conv1 "))
    assert conv1.split()[-6:] == ["12,544", "3,136", "1,568", "1,568", "VW-SDK", "1.000"]
    assert "window" not in out and "Network totals" in out
    code, detail, _ = run(capsys, "map", "resnet18", "--array", "512x512", "--detail")
    assert code == 0 and "VW-SDK window" in detail and "flex util tile/avg" in detail
    assert max(len(line) for line in detail.splitlines()) > 120


def test_engineering_notation_with_units():
    assert unit_of("adc.energy_per_conversion_j") == "J" and unit_of("adc.area_mm2") == "mm2"
    assert unit_of("adc.bits") == ""
    assert engineering(2e-3 / 1.28e9, "J") == "1.562 pJ"  # ISAAC ADC: 2 mW per ADC at 1.28 GS/s
    assert engineering(100e-9, "s") == "100 ns"
    assert engineering(0.0096 / 8, "mm2") == "1.2e-3 mm2"
    assert engineering(9.99996e-10, "s") == "1 ns"  # rounding carries into the next prefix
    assert engineering(1 / 96) == "0.0104"


def test_presets_show_engineering_values_with_units(capsys):
    code, out, _ = run(capsys, "presets", "isaac")
    assert code == 0
    assert " 0.000 " not in out and "0.000\n" not in out
    rows = {line.split()[0]: line for line in out.splitlines()[3:]}
    assert "1.562 pJ" in rows["adc.energy_per_conversion_j"]
    assert "781.2 ps" in rows["adc.conversion_time_s"]  # 1 / 1.28 GS/s
    assert "100 ns" in rows["array.read_time_s"]
    assert rows["adc.bits"].split()[1] == "8"


def test_cost_json_has_one_schema_for_one_method_or_all(capsys):
    docs = {}
    for method in ("vwsdk", "all"):
        code, out, _ = run(capsys, "cost", "resnet18-paper", "--method", method, "--format", "json")
        assert code == 0
        docs[method] = json.loads(out)
    assert set(docs["vwsdk"]) == set(docs["all"]) == {"methods", "comparison"}
    assert list(docs["all"]["methods"]) == ["im2col", "sdk", "vwsdk", "flex"]
    assert docs["vwsdk"]["methods"]["vwsdk"] == docs["all"]["methods"]["vwsdk"]
    assert docs["vwsdk"]["comparison"] == [r for r in docs["all"]["comparison"] if r["method"] == "vwsdk"]


def test_isaac_on_256_columns_says_why_every_method_is_im2col(capsys):
    # 16-bit weights in 2-bit cells: 8 cells per weight, C' = 256 / 8 = 32 <= every layer's OC.
    preset = load_preset("isaac")
    array = ArraySpec(256, 256, cell_bits=2, weight_bits=16)
    mapping = map_network(load_network("resnet18"), array)
    note = coincidence_note(mapping)
    assert note is not None and "C' = 32 usable columns (256 columns / 8 cells per 16-bit weight" in note
    assert "every method maps as im2col" in note and "(fewest: 64)" in note
    costs = {m: cost_mapping(mapping, m, CostSettings(preset)) for m in mapping.methods}
    assert "identical bars" in methods_plot_title(costs, note)
    code, out, _ = run(capsys, "cost", "resnet18", "--array", "256x256", "--method", "all")
    assert code == 0 and note in out
    code, out, _ = run(capsys, "map", "resnet18", "--array", "256x256", "--weight-bits", "16",
                       "--cell-bits", "2")
    assert code == 0 and note in out


def test_no_note_when_methods_differ_and_a_partial_note_when_some_coincide():
    full = map_network(load_network("resnet18-paper"), ArraySpec(512, 512))
    assert coincidence_note(full) is None  # four different cycle counts on conv1
    pair = map_network(load_network("resnet18-paper"), ArraySpec(512, 512), ("vwsdk", "im2col", "sdk"))
    assert coincidence_note(pair) is None
    conv3 = load_network("resnet18-paper").layers[2:3]  # 28x28 3x3x128x128: 2,028 2,028 676 676
    assert coincidence_note(map_network(conv3, ArraySpec(512, 512))) == (
        "Note: identical cycles on every layer: im2col = SDK; VW-SDK = flex.")
    conv5 = load_network("resnet18-paper").layers[-1:]  # 7x7 3x3x512x512: 225 for every method
    assert coincidence_note(map_network(conv5, ArraySpec(512, 512))).endswith("maps as im2col.")
    # One output pixel (a linear layer), C' = 512 > OC = 10: identical, but not for lack of columns.
    fc = map_network([ConvLayer("fc", 64, 10, 1, input_size=1)], ArraySpec(512, 512))
    assert coincidence_note(fc) == ("Note: im2col, SDK, VW-SDK, flex give identical cycles on every "
                                    "layer of this network on this array.")
