"""Validation of layer and array records: every bad value names its field and the allowed range."""
import pytest

from imcflow import ArraySpec, ConfigError, ConvLayer, linear_layer, parse_array, parse_layer_spec


def test_real_and_paper_output_sizes():
    l = ConvLayer("c", 3, 64, 7, input_size=224, stride=2, padding=3)
    assert l.output_size("real") == (112, 112)
    assert l.output_size("paper") == (218, 218)
    d = ConvLayer("d", 8, 8, 3, input_size=(20, 30), dilation=(2, 1), padding=(2, 0), stride=(1, 2))
    assert d.kernel_extent == (5, 3)
    assert d.output_size() == (20, 14)


def test_linear_is_a_1x1_conv_on_a_1x1_map():
    fc = linear_layer("fc", 512, 1000)
    assert (fc.H, fc.W, fc.Kh, fc.Kw, fc.IC, fc.OC) == (1, 1, 1, 1, 512, 1000)
    assert fc.weight_count == 512000 and fc.macs == 512000


@pytest.mark.parametrize("kwargs, message", [
    (dict(in_channels=0), "in_channels must be >= 1, got 0"),
    (dict(out_channels=-3), "out_channels must be >= 1, got -3"),
    (dict(kernel_size=(3, 0)), "kernel_size must be >= 1"),
    (dict(stride=0), "stride must be >= 1"),
    (dict(padding=-1), "padding must be >= 0"),
    (dict(groups=3), "in_channels=4 is not divisible by groups=3"),
    (dict(kernel_size=9), "kernel extent 9 along H is larger than the padded input 8"),
    (dict(in_channels=2.5), "in_channels must be an integer, got 2.5"),
    (dict(kind="pool"), "kind must be 'conv' or 'linear'"),
])
def test_layer_errors_name_field_value_and_range(kwargs, message):
    base = dict(name="conv1", in_channels=4, out_channels=8, kernel_size=3, input_size=8)
    base.update(kwargs)
    with pytest.raises(ConfigError, match="layer 'conv1'|layer name") as err:
        ConvLayer(**base)
    assert message in str(err.value)


def test_array_usable_columns_and_errors():
    assert ArraySpec(512, 512, cell_bits=2, weight_bits=8).usable_cols == 128
    assert ArraySpec(512, 512, cell_bits=3, weight_bits=8).usable_cols == 170  # 3 slices per weight
    assert ArraySpec(512, 512, cell_bits=3, weight_bits=8,
                     column_packing="fractional").usable_cols == 192  # the spec's formula verbatim
    with pytest.raises(ConfigError, match="usable columns C' = 0"):
        ArraySpec(64, 3, cell_bits=1, weight_bits=4)
    with pytest.raises(ConfigError, match="array rows must be in"):
        ArraySpec(0, 64)
    with pytest.raises(ConfigError, match="ROWSxCOLS"):
        parse_array("512")
    assert parse_array("256x512").cols == 512


def test_layer_spec_parsing():
    l = parse_layer_spec("56,56,3,3,64,128,2,1,2")
    assert (l.H, l.Kh, l.IC, l.OC, l.stride, l.padding, l.groups) == (56, 3, 64, 128, (2, 2), (1, 1), 2)
    with pytest.raises(ConfigError, match="expected 6 to 9"):
        parse_layer_spec("1,2,3")
    with pytest.raises(ConfigError, match="field IC must be an integer, got 'x'"):
        parse_layer_spec("8,8,3,3,x,4")


def test_kernel_larger_than_array_falls_back_to_im2col():
    from imcflow import map_layer

    layer = ConvLayer("big", 4, 4, 11, input_size=16)  # 121 taps > 64 rows: no window fits
    m = map_layer(layer, ArraySpec(64, 64), "vwsdk")
    assert m.fallback == "im2col" and m.cycles == map_layer(layer, ArraySpec(64, 64), "im2col").cycles
