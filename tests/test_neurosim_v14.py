"""NeuroSim that really runs: exact NetWork.csv bytes, version-aware run scripts, NeuroSim's floor-plan
rule, whole-network traces from real images, and the chip model held against DNN+NeuroSim V1.4's own
figures on VGG-8 (tests/data/neurosim, see SOURCE.md there)."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from imcflow.cli import main
from imcflow.cost.neurosim_floorplan import FloorplanSettings, check_floorplan, plan_floor
from imcflow.cost.periphery import CONSTANTS, estimate_chip, load_chip_model
from imcflow.errors import ConfigError, FormatError
from imcflow.frontends.export import ExportOptions, export_network
from imcflow.frontends.neurosim import (
    NEUROSIM_VERSIONS,
    NeuroSimTrace,
    NeuroSimTraceSet,
    bits_csv,
    neurosim_rows,
    neurosim_trace,
    parse_neurosim_csv,
    random_trace,
    read_neurosim_csv,
    weights_csv,
)
from imcflow.frontends.neurosim_log import parse_neurosim_log
from imcflow.layers import ConvLayer, Network
from imcflow.networks import load_network

DATA = Path(__file__).parent / "data" / "neurosim"
NETWORK_VGG8 = (DATA / "NetWork_VGG8.csv").read_bytes()   # DNN_NeuroSim_V1.4 ac828e6, as shipped
VGG8_ROWS = [tuple(int(v) for v in line.split(",")) for line in NETWORK_VGG8.decode().split("\r\n") if line]
PADDED_ROWS = [(h + 2, w + 2, *rest) if k == 3 else (h, w, *rest)
               for (h, w, *rest), k in zip(VGG8_ROWS, [r[3] for r in VGG8_ROWS], strict=False)]


def reference(run: str) -> list[dict[str, str]]:
    with open(DATA / "v14_vgg8_reference.csv", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if r["run"] == run]


# --- 1. formats ------------------------------------------------------------------------------------

def test_export_is_byte_identical_to_neurosims_file(tmp_path, capsysbinary):
    assert NETWORK_VGG8.count(b"\r\n") == 8 and len(NETWORK_VGG8) == 176
    net = load_network("vgg8-cifar")
    assert neurosim_rows(net, "neurosim").to_csv().encode() == NETWORK_VGG8
    exported = export_network(net, "neurosim", ExportOptions(padding="neurosim"))
    exported.save(str(tmp_path / "a.csv"))
    assert (tmp_path / "a.csv").read_bytes() == NETWORK_VGG8
    assert main(["export", "vgg8-cifar", "--to", "neurosim", "--out", str(tmp_path / "b.csv")]) == 0
    assert (tmp_path / "b.csv").read_bytes() == NETWORK_VGG8
    assert main(["export", "vgg8-cifar", "--to", "neurosim"]) == 0
    assert capsysbinary.readouterr().out == NETWORK_VGG8


def test_reads_crlf_and_lf_alike(tmp_path):
    crlf = tmp_path / "crlf.csv"
    lf = tmp_path / "lf.csv"
    crlf.write_bytes(NETWORK_VGG8)
    lf.write_bytes(NETWORK_VGG8.replace(b"\r\n", b"\n"))
    a, b = read_neurosim_csv(str(crlf), padding="neurosim"), read_neurosim_csv(str(lf), padding="neurosim")
    assert [l.to_dict() for l in a.layers] == [l.to_dict() for l in b.layers]
    assert a.meta["neurosim"]["pool_flags"] == [0, 1, 0, 1, 0, 1, 0, 0]
    assert neurosim_rows(a, "neurosim").to_csv().encode() == NETWORK_VGG8


def test_pool_flags_in_every_file_written(tmp_path):
    net = load_network("vgg8-cifar")
    trace = random_trace(net.layer("features.3"), 0, 8, 8, "neurosim", net)   # a max-pool follows
    assert trace.row.pool_flag == 1
    files = trace.files()
    assert files["NetWork_features.3.csv"] == b"32,32,128,3,3,128,1,1\r\n"
    assert random_trace(net.layer("features.7"), 0, 8, 8, "neurosim", net).row.pool_flag == 0


# --- 2. versions and the floor plan ----------------------------------------------------------------

def test_run_script_follows_each_versions_argument_order():
    layer = ConvLayer("c", 128, 128, 3, input_size=8, padding=1)
    trace = random_trace(layer, 0, 8, 8)
    v13 = trace.command(version="1.3").split()
    v14 = trace.command(version="1.4").split()
    v2x = trace.command(version="2.x").split()
    assert v13[1:] == ["NetWork_c.csv", "8", "8", "weight_c.csv", "input_c.csv"]
    assert v14[1:] == ["NetWork_c.csv", "8", "8", "128", "128", "weight_c.csv", "input_c.csv"]  # driver: 128 128
    assert v2x[1:5] == ["0", "NetWork_c.csv", "8", "8"] and v2x[5:7] == ["weight_c.csv", "weight_c.csv"]
    assert v2x[7] == "input_c.csv" and float(v2x[8]) == pytest.approx(trace.input_bit_density, abs=1e-6)
    assert trace.command(version="1.4", sub_array=64, parallel_read=32).split()[4:6] == ["64", "32"]
    assert set(NEUROSIM_VERSIONS) == {"1.3", "1.4", "2.x"}
    with pytest.raises(ConfigError, match="1.3, 1.4, 2.x"):
        trace.command(version="1.5")


def test_floorplan_matches_neurosim_v14_logs():
    for run, rows, pipelined in (("pipelined", VGG8_ROWS, True), ("layer-by-layer", VGG8_ROWS, False),
                                 ("pipelined-padded", PADDED_ROWS, True)):
        fp = plan_floor(rows, FloorplanSettings(pipeline=pipelined))
        ref = [r for r in reference(run) if r["layer"] != "chip"]
        assert [p.tiles for p in fp.layers] == [int(r["tiles"]) for r in ref], run
        assert [p.speed_up for p in fp.layers] == [int(r["speed_up"]) for r in ref], run


def test_layer_neurosim_cannot_floorplan_is_refused_before_writing(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"floor-plan.*novel-mapped.*IC\*Kh\*Kw >= 128.*SubArray Size"):
        check_floorplan([(34, 34, 3, 3, 3, 128, 0, 1)])
    check_floorplan([(34, 34, 3, 3, 3, 128, 0, 1)], FloorplanSettings(sub_array=16))  # 27 >= 16: fits
    check_floorplan(VGG8_ROWS)
    with pytest.raises(ConfigError, match="4 x 128"):   # conventional mapping only: a 4A tile is needed
        check_floorplan([(34, 34, 64, 3, 3, 32, 0, 1)], FloorplanSettings(novel_mapping=False))
    out = tmp_path / "tr"
    code = main(["export", "--layer", "32,32,3,3,3,128,1,1", "--to", "neurosim", "--padding", "padded",
                 "--trace", "layer1", "--trace-dir", str(out)])
    captured = capsys.readouterr()
    assert code == 2 and "cannot floor-plan" in captured.err and "34,34,3,3,3,128,0,1" not in captured.out
    assert captured.out == "" and not out.exists()


# --- 3. traces ---------------------------------------------------------------------------------------

def test_trace_and_row_in_different_conventions_are_refused():
    layer = ConvLayer("c", 4, 4, 3, input_size=8, padding=1)
    padded = random_trace(layer, padding="padded")
    raw_row = neurosim_rows(Network("n", (layer,)), "neurosim").rows[0]
    with pytest.raises(ConfigError, match="64 windows.*36.*refused"):
        NeuroSimTrace(layer, raw_row, padded.weight_matrix, padded.input_columns)
    assert random_trace(layer, padding="neurosim").input_columns.shape[1] == 36   # 6x6 inside 8x8
    net = Network("n", (layer,))
    with pytest.raises(ConfigError, match="mix of conventions"):
        NeuroSimTraceSet(net, neurosim_rows(net, "neurosim"), (padded,))


def test_encoders_write_what_numpy_reads_back():
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(37, 5))
    back = np.loadtxt(weights_csv(w, 8).decode().splitlines(), delimiter=",")
    assert np.array_equal(back * 128, w)                       # exact: 7 decimals hold k / 128
    bits = rng.integers(0, 2, size=(4, 9))
    assert np.array_equal(np.loadtxt(bits_csv(bits).decode().splitlines(), delimiter=","), bits)
    with pytest.raises(ConfigError, match=r"\[-128, 127\]"):
        weights_csv(np.array([[128]]), 8)


def test_whole_network_traces_from_real_digits(tmp_path):
    from imcflow.frontends.neurosim_traces import integer_input, network_traces, stored_integer_weights
    from imcflow.models import create_model
    from imcflow.train import load_dataset, prepare_inputs

    torch.manual_seed(0)
    model = create_model("smallcnn-8")
    data = load_dataset("digits", "test", subset=4)
    images = prepare_inputs(data.images, data)
    trace_set, summary = network_traces(model, images, "smallcnn-8", padding="padded", image_index=1)
    assert [t.layer.name for t in trace_set.traces] == ["conv1", "conv2", "fc"]
    assert [t.row.pool_flag for t in trace_set.traces] == [0, 1, 0]
    # conv2 holds the stored integers, and its input is the real (ReLU'd) activation of image 1
    conv2 = trace_set.traces[1]
    w_int = stored_integer_weights(model.conv2, 8)
    assert np.array_equal(conv2.weight_matrix, w_int.reshape(32, -1).T)
    feats = {}

    def keep_input(module, inputs, output):
        feats["x"] = inputs[0]
    h = model.conv2.register_forward_hook(keep_input)
    with torch.no_grad():
        model.eval()(images)
    h.remove()
    x_int = integer_input(feats["x"], 8)[1]
    assert not conv2.signed_inputs and (conv2.input_columns == 0).mean() > 0.2   # real ReLU zeros
    y = torch.nn.functional.conv2d(torch.tensor(x_int[None], dtype=torch.float64),
                                   torch.tensor(w_int, dtype=torch.float64), padding=1)[0]
    assert np.array_equal(conv2.expected_output(), y.reshape(32, -1).numpy().astype(np.int64))
    files = trace_set.files()
    assert files["NetWork_smallcnn-8.csv"] == b"10,10,1,3,3,16,0,1\r\n10,10,16,3,3,32,1,1\r\n1,1,512,1,1,10,0,1\r\n"
    bits = np.loadtxt(files["input_conv2.csv"].decode().splitlines(), delimiter=",")
    assert np.array_equal(bits, conv2.bit_matrix) and bits.shape == (144, 64 * 8)
    assert summary["layers"][1]["batch_zero_inputs"] > 0.2 and summary["images"] == 4
    script = files["run_neurosim.sh"].decode().splitlines()[-1].split()
    assert script[1:7] == ["$NEUROSIM", "NetWork_smallcnn-8.csv", "8", "8", "128", "128"]
    assert script[7:] == ["weight_conv1.csv", "input_conv1.csv", "weight_conv2.csv", "input_conv2.csv",
                          "weight_fc.csv", "input_fc.csv"]


def test_traces_command_writes_every_layer(tmp_path, capsys):
    out = tmp_path / "tr"
    assert main(["export", "smallcnn-8", "--to", "neurosim", "--traces", "--data", "digits", "--images", "3",
                 "--trace-dir", str(out), "--neurosim-version", "1.3"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["NetWork_smallcnn-8.csv", "run_neurosim.sh", "trace_summary.json",
                            *[f"{k}_{n}.csv" for n in ("conv1", "conv2", "fc") for k in ("weight", "input")]])
    assert (out / "NetWork_smallcnn-8.csv").read_bytes().count(b"\r\n") == 3
    last = (out / "run_neurosim.sh").read_text().splitlines()[-1].split()
    assert last[2:5] == ["NetWork_smallcnn-8.csv", "8", "8"] and last[5] == "weight_conv1.csv"   # V1.3
    summary = json.loads((out / "trace_summary.json").read_text())
    assert summary["padding"] == "neurosim" and summary["layers"][0]["windows"] == 36
    # nothing a user made is overwritten unless asked
    capsys.readouterr()
    assert main(["export", "smallcnn-8", "--to", "neurosim", "--traces", "--data", "digits",
                 "--trace-dir", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


# --- 4. the chip model against NeuroSim V1.4 ----------------------------------------------------------

@pytest.mark.parametrize("run, rows, pipelined", [("pipelined", VGG8_ROWS, True),
                                                  ("layer-by-layer", VGG8_ROWS, False),
                                                  ("pipelined-padded", PADDED_ROWS, True)])
def test_chip_model_within_target_of_neurosim_v14(run, rows, pipelined):
    ref = reference(run)
    layers, chip = ref[:-1], ref[-1]
    cost = estimate_chip(rows, "neurosim-sram22", pipelined=pipelined)
    for ours, theirs in zip(cost.layers, layers, strict=False):
        for mine, key in ((ours.latency_s * 1e9, "latency_ns"), (ours.energy_j * 1e12, "energy_pj")):
            ratio = mine / float(theirs[key])
            assert 1 / 1.25 <= ratio <= 1.25, (run, theirs["layer"], key, ratio)
    assert 1 / 1.15 <= cost.latency_s * 1e9 / float(chip["latency_ns"]) <= 1.15
    assert 1 / 1.15 <= cost.energy_j * 1e12 / float(chip["energy_pj"]) <= 1.15
    assert 1 / 1.25 <= cost.area_mm2 * 1e6 / float(chip["area_um2"]) <= 1.25


def test_chip_model_energy_follows_input_activity_and_reports_both_op_counts():
    low = estimate_chip(VGG8_ROWS, input_density=0.1)
    high = estimate_chip(VGG8_ROWS, input_density=0.5)
    assert high.energy_j > low.energy_j and high.latency_s == low.latency_s
    padded = estimate_chip(PADDED_ROWS, real_ops=sum(2 * l.macs for l in load_network("vgg8-cifar").layers))
    assert padded.neurosim_ops == sum(2 * math.prod(r[:6]) for r in PADDED_ROWS)
    assert padded.neurosim_ops / padded.real_ops == pytest.approx(1.337, abs=1e-3)   # +34 %
    assert padded.tops_per_w("neurosim") / padded.tops_per_w("real") == pytest.approx(1.337, abs=1e-3)


def test_chip_models_cite_every_constant_and_rram_inherits():
    for name in ("neurosim-sram22", "neurosim-rram22"):
        m = load_chip_model(name)
        assert set(m.values) == set(CONSTANTS) and all(len(m.sources[k]) > 10 for k in CONSTANTS)
    rram = load_chip_model("neurosim-rram22")
    assert rram["cell_bits"] == 2 and rram["cell_read_energy_j"] > 0
    assert rram.sources["adc_bits"].startswith("neurosim-sram22: ")


def test_chip_model_file_errors_name_the_key(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("name: m\nbase: neurosim-sram22\nconstants:\n  col_mux: {value: -8, source: mine}\n")
    with pytest.raises(ConfigError, match="col_mux"):
        load_chip_model(str(bad))
    bad.write_text("name: m\nbase: neurosim-sram22\nconstants:\n  colmux: {value: 8, source: mine}\n")
    with pytest.raises(ConfigError, match="colmux"):
        load_chip_model(str(bad))


LOG_EXCERPT = """----------------- # of tile used for each layer -----------------
layer1: 1
----------------- Speed-up of each layer ------------------
layer1: 8
----------------- Utilization of each layer ------------------
-------------------- Estimation of Layer 1 ----------------------
layer1's readLatency is: 136654ns
layer1's readDynamicEnergy is: 1.20906e+06pJ
----------- ADC (or S/As and precharger for SRAM) readLatency is : 12221.3ns
------------------------------ Summary --------------------------------
ChipArea : 6.86061e+07um^2
Chip clock period is: 1.6974ns
Chip layer-by-layer readLatency (per image) is: 327360ns
Chip total readDynamicEnergy is: 4.21006e+07pJ
"""


def test_log_parser_reads_neurosim_units():
    log = parse_neurosim_log(LOG_EXCERPT)
    assert not log.pipelined and log.tiles == (1,) and log.speed_up == (8,)
    assert log.layers[0]["latency_s"] == pytest.approx(136654e-9)
    assert log.layers[0]["adc_latency_s"] == pytest.approx(12221.3e-9)
    assert log.chip["area_mm2"] == pytest.approx(68.6061) and log.chip["energy_j"] == pytest.approx(42.1006e-6)
    with pytest.raises(FormatError, match="not a NeuroSim log"):
        parse_neurosim_log("hello")


def test_chip_command_prints_table():
    assert main(["chip", "vgg8-cifar", "--format", "json"]) == 0


def test_parse_keeps_fields_of_one_row_network_with_crlf():
    net = parse_neurosim_csv("34,34,3,3,3,128,0,1\r\n", padding="padded")
    assert net.layers[0].output_size() == (32, 32)
    layer = ConvLayer("c", 3, 128, 3, input_size=32, padding=1)
    assert neurosim_trace(layer, np.zeros((128, 3, 3, 3), int), np.zeros((3, 32, 32), int)).row.values == \
        (34, 34, 3, 3, 3, 128, 0, 1)


TORCH_FREE = """
import sys
sys.modules['torch'] = None
from imcflow.cost.periphery import estimate_chip
from imcflow.frontends.neurosim import neurosim_rows, random_trace
from imcflow.frontends.neurosim_log import parse_neurosim_log
from imcflow.report.neurosim_compare import compare_with_log
from imcflow.frontends.neurosim import read_neurosim_csv
net = read_neurosim_csv(sys.argv[1], padding='neurosim')
rows = [r.values for r in neurosim_rows(net, 'neurosim').rows]
assert len(estimate_chip(rows).layers) == 8
assert random_trace(net.layers[1], network=net).row.pool_flag == 1
print('ok')
"""


def test_neurosim_tools_need_no_torch():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", TORCH_FREE, str(DATA / "NetWork_VGG8.csv")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
