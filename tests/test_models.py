"""Built-in models: exact parameter counts, layer lists, shapes, the registry and the CLI on them."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from imcflow.cli import main as cli_main
from imcflow.errors import ConfigError, UnknownNameError
from imcflow.frontends.torch_trace import trace_module
from imcflow.models import create_model, default_input_shape, model_names
from imcflow.networks import builtin_names, load_network
from imcflow.networks.builtin import traced_network

torch.set_num_threads(1)

# Exact parameter counts. ImageNet ones are the published torchvision figures for the same
# architectures (ResNet-18 11,689,512; ResNet-34 21,797,672; ResNet-50 25,557,032; VGG-11/13/16
# 132,863,336 / 133,047,848 / 138,357,544; MobileNetV2 3,504,872), WRN-16-4 the 2.75M of the WRN paper's
# CIFAR-10 model (2,748,890). ResNet-20 with 1x1 conv + BN shortcuts, by hand:
#   stem 3*16*9 + BN 32 = 464; stage 1: 6 convs 16*16*9 + 6 BN*32 = 14,016;
#   stage 2: 16*32*9 + 5*32*32*9 + 6 BN*64 + shortcut 16*32 + BN 64 = 51,648;
#   stage 3: 32*64*9 + 5*64*64*9 + 6 BN*128 + shortcut 32*64 + BN 128 = 205,696; fc 64*10+10 = 650;
#   total 464 + 14,016 + 51,648 + 205,696 + 650 = 272,474.
RESNET20_PARAMS = (3 * 16 * 9 + 32) + (6 * 16 * 16 * 9 + 6 * 32) \
    + (16 * 32 * 9 + 5 * 32 * 32 * 9 + 6 * 64 + 16 * 32 + 64) \
    + (32 * 64 * 9 + 5 * 64 * 64 * 9 + 6 * 128 + 32 * 64 + 128) + (64 * 10 + 10)


def cifar_resnet20_params(c1: int, c2: int, c3: int, in_ch: int = 3, classes: int = 10) -> int:
    """The same hand count for any stage widths (stem, 3 stages of 3 blocks, 2 shortcuts, fc)."""
    return (in_ch * c1 * 9 + 2 * c1) + (6 * c1 * c1 * 9 + 6 * 2 * c1) \
        + (c1 * c2 * 9 + 5 * c2 * c2 * 9 + 6 * 2 * c2 + c1 * c2 + 2 * c2) \
        + (c2 * c3 * 9 + 5 * c3 * c3 * 9 + 6 * 2 * c3 + c2 * c3 + 2 * c3) + (c3 * classes + classes)


PARAMS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "mobilenetv2": 3_504_872,
    "wrn16-4": 2_748_890, "resnet20": 272_474, "resnet20-wide": 4_327_754,
}

# Conv + linear weight layers, from the architectures: ResNet-18 = stem + 16 block convs + 3 downsample
# + fc = 21; ResNet-34 = 1 + 32 + 3 + 1 = 37; ResNet-50 = 1 + 48 + 4 + 1 = 54 (stage 1 also projects,
# 64 -> 256); VGG-n = n; MobileNetV2 = stem + 17 blocks x 3 convs - 1 (first block has no expansion)
# + last 1x1 + classifier = 1 + 50 + 1 + 1 = 53; CIFAR ResNet-(6n+2) = 6n + 2 + 2 shortcuts;
# WRN-16-4 = stem + 12 + 3 shortcuts (the 16 -> 64 stage also projects) + fc = 17; VGG-8 = 6 + 2;
# VGG-16-cifar = 13 + 1; CNN-8 = 7 + 1; smallcnn = 2 + 1.
LAYERS = {
    "resnet18": 21, "resnet34": 37, "resnet50": 54, "vgg11": 11, "vgg13": 13, "vgg16": 16,
    "mobilenetv2": 53, "resnet20": 22, "resnet20-wide": 22, "resnet32": 34, "resnet56": 58, "wrn16-4": 17,
    "vgg8-cifar": 8, "vgg16-cifar": 14, "cnn8": 8, "smallcnn-28": 3, "smallcnn-8": 3,
}
NUM_CLASSES = {n: 1000 for n in ("resnet18", "resnet34", "resnet50", "vgg11", "vgg13", "vgg16",
                                 "mobilenetv2")}


def _meta_model(name: str, **kw) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kw)


def _weight_params(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_every_model_is_registered_and_listed():
    assert set(model_names()) == set(LAYERS)
    assert set(model_names()) <= set(builtin_names())


def test_resnet20_hand_count():
    assert PARAMS["resnet20"] == RESNET20_PARAMS == cifar_resnet20_params(16, 32, 64)
    assert PARAMS["resnet20-wide"] == cifar_resnet20_params(64, 128, 256)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts_are_exact(name):
    assert sum(p.numel() for p in _meta_model(name).parameters()) == PARAMS[name]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_traced_network(name):
    net = traced_network(name)
    model = _meta_model(name)
    assert len(net.layers) == LAYERS[name]
    assert net.input_shape == default_input_shape(name)
    assert net.source == "built-in" and net.geometry == "real"
    # Every weight of every conv/linear module is in the layer list once.
    assert net.weight_count == _weight_params(model)
    assert net.meta["output_shape"] == (NUM_CLASSES.get(name, 10),)
    # Layer names are the modules' qualified names, each called once.
    modules = dict(model.named_modules())
    for layer in net.layers:
        m = modules[layer.name]
        assert isinstance(m, (nn.Conv2d, nn.Linear))
        assert layer.bias == (m.bias is not None)
    assert net.layers[-1].kind == "linear"


@pytest.mark.parametrize("name", ["resnet20", "wrn16-4", "vgg8-cifar", "cnn8", "smallcnn-28",
                                  "smallcnn-8", "mobilenetv2", "resnet18"])
def test_real_forward_matches_traced_shapes(name):
    # The meta-device trace must describe exactly what the real model computes.
    torch.manual_seed(0)
    model = create_model(name)
    shape = default_input_shape(name)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert tuple(out.shape) == (2, NUM_CLASSES.get(name, 10))
    assert trace_module(model, shape, name, source="built-in") == traced_network(name)


# Multiply-accumulates per 224x224 image, in GMACs, as torchvision's model docs list them ("GFLOPS"
# there counts MACs): an independent check of every traced input size, stride and padding.
GMACS = {"resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "vgg11": 7.61, "vgg13": 11.31,
         "vgg16": 15.47, "mobilenetv2": 0.30}


@pytest.mark.parametrize("name", sorted(GMACS))
def test_imagenet_macs_match_published(name):
    assert round(sum(l.macs for l in traced_network(name).layers) / 1e9, 2) == GMACS[name]


def test_resnet18_shapes():
    net = traced_network("resnet18")
    conv1 = net.layer("conv1")
    assert (conv1.H, conv1.W, conv1.IC, conv1.OC, conv1.kernel_size, conv1.stride, conv1.padding) == \
        (224, 224, 3, 64, (7, 7), (2, 2), (3, 3))
    ds = net.layer("layer4.0.downsample.0")
    assert (ds.H, ds.IC, ds.OC, ds.kernel_size, ds.stride, ds.output_size()) == \
        (14, 256, 512, (1, 1), (2, 2), (7, 7))
    assert net.layer("layer1.0.conv1").H == 56  # after the stride-2 stem and the max-pool
    fc = net.layer("fc")
    assert (fc.kind, fc.IC, fc.OC, fc.H, fc.W, fc.bias) == ("linear", 512, 1000, 1, 1, True)
    assert sum(1 for l in net.layers if "downsample" in l.name) == 3


def test_resnet50_bottleneck_shapes():
    net = traced_network("resnet50")
    c2 = net.layer("layer2.0.conv2")  # v1.5: the stride sits on the 3x3 conv
    assert (c2.H, c2.IC, c2.OC, c2.kernel_size, c2.stride) == (56, 128, 128, (3, 3), (2, 2))
    assert (net.layer("layer1.0.downsample.0").IC, net.layer("layer1.0.downsample.0").OC) == (64, 256)
    assert net.layer("fc").IC == 2048


def test_vgg16_classifier_is_standard():
    net = traced_network("vgg16")
    fcs = [(l.IC, l.OC) for l in net.layers if l.kind == "linear"]
    assert fcs == [(25088, 4096), (4096, 4096), (4096, 1000)]
    last_conv = [l for l in net.layers if l.kind == "conv"][-1]
    assert (last_conv.H, last_conv.IC, last_conv.OC) == (14, 512, 512)


def test_mobilenetv2_depthwise_convs():
    net = traced_network("mobilenetv2")
    dw = [l for l in net.layers if l.groups > 1]
    assert len(dw) == 17
    assert all(l.groups == l.IC == l.OC and l.kernel_size == (3, 3) for l in dw)
    first = net.layer("features.1.conv.0.0")
    assert (first.H, first.groups, first.IC) == (112, 32, 32)
    assert (net.layer("features.18.0").IC, net.layer("features.18.0").OC) == (320, 1280)
    assert net.layer("classifier.1").IC == 1280


def test_cifar_resnets_and_wrn():
    r20 = traced_network("resnet20")
    assert [l.OC for l in r20.layers if l.kind == "conv" and "downsample" not in l.name] == \
        [16] * 7 + [32] * 6 + [64] * 6
    sc = r20.layer("layer2.0.downsample.0")
    assert (sc.H, sc.IC, sc.OC, sc.kernel_size, sc.stride) == (32, 16, 32, (1, 1), (2, 2))
    assert r20.layer("layer3.0.conv1").output_size() == (8, 8)
    wrn = traced_network("wrn16-4")
    assert [l.OC for l in wrn.layers if "shortcut" in l.name] == [64, 128, 256]
    assert wrn.layer("fc").IC == 256
    model = create_model("wrn16-4")
    assert model.layer1[0].dropout.p == 0.3


def test_cnn8_matches_the_vwc_sdk_layer_list():
    # The authors' pruning script lists (H, K, IC, OC) of the six layers after the stem for CNN-8.
    rows = [(l.H, l.Kh, l.IC, l.OC) for l in traced_network("cnn8").layers[1:-1]]
    assert rows == list(zip([18, 18, 9, 7, 7, 5], [3, 3, 3, 3, 3, 5], [24, 32, 32, 64, 64, 64],
                            [32, 32, 64, 64, 64, 256], strict=False))
    small = traced_network("cnn8", (1, 32, 32))  # conv7 spans the remaining 3x3 map
    assert small.layer("conv7").kernel_size == (3, 3) and small.layer("conv1").IC == 1


def test_small_cnns():
    n28, n8 = traced_network("smallcnn-28"), traced_network("smallcnn-8")
    assert n28.layer("fc").IC == 32 * 7 * 7 and n8.layer("fc").IC == 32 * 4 * 4
    assert n28.layer("conv2").H == 14 and n8.layer("conv2").H == 8


def test_vgg_cifar():
    v8 = traced_network("vgg8-cifar")
    assert [(l.IC, l.OC) for l in v8.layers if l.kind == "linear"] == [(8192, 1024), (1024, 10)]
    assert traced_network("vgg8-cifar", (3, 40, 40)).layer("classifier.0").IC == 512 * 5 * 5
    v16 = traced_network("vgg16-cifar")
    assert v16.layer("classifier.0").IC == 512 and v16.layers[-2].H == 2


def test_create_model_options():
    m = create_model("resnet20", num_classes=10, in_channels=1)
    assert m.conv1.in_channels == 1 and m.fc.out_features == 10
    assert create_model("resnet20", num_classes=100).fc.out_features == 100
    mnist = traced_network("resnet20", (1, 32, 32))
    assert mnist.layers[0].IC == 1 and mnist.input_shape == (1, 32, 32)
    assert create_model("wrn16-4", dropout=0.0).layer1[0].dropout.p == 0.0
    with pytest.raises(ConfigError, match="unknown option.*'depth'"):
        create_model("resnet20", depth=3)
    with pytest.raises(ConfigError, match="num_classes must be a positive integer, got 0"):
        create_model("resnet20", num_classes=0)
    with pytest.raises(ConfigError, match="cnn8: input 16x16 is too small"):
        create_model("cnn8", input_size=(16, 16))
    with pytest.raises(ConfigError, match="--input must be CxHxW"):
        traced_network("resnet20", (32, 32))
    with pytest.raises(ConfigError, match="forward pass on input shape 3x4x4 failed"):
        traced_network("vgg16-cifar", (3, 4, 4))


def test_unknown_model_lists_known_names():
    with pytest.raises(UnknownNameError) as info:
        create_model("resnet19")
    msg = str(info.value)
    assert "resnet19" in msg and all(n in msg for n in model_names())
    with pytest.raises(UnknownNameError) as info:
        default_input_shape("nope")
    with pytest.raises(UnknownNameError, match="resnet20.*wrn16-4|wrn16-4.*resnet20"):
        load_network("nope")


def test_traced_networks_are_cached_and_load_network_uses_them():
    assert traced_network("resnet20") is traced_network("resnet20")
    # At the default input the layer list comes from the torch-free cache: equal to the traced one.
    assert load_network("resnet20") is load_network("resnet20")
    assert load_network("resnet20") == traced_network("resnet20")
    assert load_network("resnet20", (1, 32, 32)) is traced_network("resnet20", (1, 32, 32))


def test_import_traces_nothing():
    code = ("import imcflow.networks as n, imcflow.networks.builtin as b; n.builtin_names();"
            "n.load_network('resnet18'); print(b._traced.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_cli_models_lists_names(capsys):
    assert cli_main(["models"]) == 0
    listed = capsys.readouterr().out
    assert all(n in listed for n in model_names())


@pytest.mark.parametrize("argv, first, last", [
    (["map", "resnet18", "--array", "512x512"], "conv1", "fc"),
    (["map", "resnet20", "--array", "128x128"], "conv1", "fc"),
])
def test_cli_map_builtin(capsys, argv, first, last):
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    names = [l.name for l in load_network(argv[1]).layers]
    rows = [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0] in names]
    assert rows[0] == first and rows[-1] == last and len(rows) == len(names)


def test_cli_map_json_layer_names(capsys, tmp_path):
    import json

    out_file = tmp_path / "r20.json"
    assert cli_main(["map", "resnet20", "--input", "1x32x32", "--array", "128x128", "--format", "json",
                     "--out", str(out_file)]) == 0
    data = json.loads(out_file.read_text())
    assert [l["name"] for l in data["layers"]] == [l.name for l in traced_network("resnet20").layers]
    assert data["layers"][0]["IC"] == 1


def test_cli_unknown_model(capsys):
    assert cli_main(["map", "resnet19"]) == 2
    err = capsys.readouterr().err
    assert "resnet19" in err and "resnet20" in err and "mobilenetv2" in err
