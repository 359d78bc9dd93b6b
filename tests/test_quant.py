"""Quantizers on hand-computed cases, STE gradients, mask-after-quantization, BN folding, integer-only conv."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from imcflow.errors import ConfigError
from imcflow.quant import (
    WEIGHT_QUANTIZERS,
    ClampedUniformActivation,
    DoReFaWeight,
    PowerOfTwoWeight,
    QuantConv2d,
    QuantLinear,
    UniformSymmetricWeight,
    fold_batchnorm,
    integer_weights,
    integerize_conv,
    is_power_of_two,
    quantize_model,
    weight_quantizer,
)

torch.set_num_threads(1)


def test_uniform_hand_case_per_channel():
    w = torch.tensor([[0.7, -0.2, 0.1], [0.03, -0.06, 0.0]])
    q, scale = UniformSymmetricWeight(3).integer(w)
    # qmax 3: row 0 scale 0.7/3, w/scale = (3, -0.857, 0.429); row 1 scale 0.02, w/s = (1.5, -3, 0)
    assert q.tolist() == [[3, -1, 0], [2, -3, 0]]  # 1.5 rounds half to even -> 2
    assert torch.allclose(scale.flatten(), torch.tensor([0.7 / 3, 0.02]))
    assert torch.allclose(UniformSymmetricWeight(3)(w), q * scale)
    per_tensor = UniformSymmetricWeight(3, per_channel=False).integer(w)[0]
    assert per_tensor.tolist() == [[3, -1, 0], [0, 0, 0]]


def test_dorefa_hand_case_has_no_zero_level():
    w = torch.tensor([0.7, -0.2, 0.1])
    q, scale = DoReFaWeight(2).integer(w)
    # tanh = (0.6044, -0.1974, 0.0997); u = t/(2*0.6044) + 0.5 = (1, 0.3367, 0.5825);
    # u*3 = (3, 1.01, 1.75) -> (3, 1, 2); 2u - 3 = (3, -1, 1); scale = mean|w| / 3 = 1/9
    assert q.tolist() == [3, -1, 1]
    assert math.isclose(float(scale), (1.0 / 3) / 3, rel_tol=1e-6)
    assert torch.allclose(DoReFaWeight(2)(w), torch.tensor([1 / 3, -1 / 9, 1 / 9]))
    assert torch.isfinite(DoReFaWeight(2)(torch.zeros(4))).all()  # degenerate input stays finite
    # 1 bit: sign times mean|w|
    assert torch.allclose(DoReFaWeight(1)(w), torch.tensor([1, -1, 1]) * w.abs().mean())
    assert DoReFaWeight(3).levels() == 8 and UniformSymmetricWeight(3).levels() == 7


def test_pow2_hand_case():
    w = torch.tensor([0.3, -0.05, 0.011])
    quant = PowerOfTwoWeight(4)
    # qmax 7, n = floor(log2(7 / 0.3)) = floor(4.54) = 4, scale 1/16: w*16 = (4.8, -0.8, 0.176)
    assert int(quant.shift(w)) == 4
    q, scale = quant.integer(w)
    assert q.tolist() == [5, -1, 0] and float(scale) == 1 / 16 and is_power_of_two(scale)
    big = torch.tensor([20.0, -3.0])  # n = floor(log2(7/20)) = -2: scale 4
    assert float(quant.integer(big)[1]) == 4.0 and quant.integer(big)[0].tolist() == [5, -1]
    assert not is_power_of_two(torch.tensor(0.3))


@settings(max_examples=40)
@given(scheme=st.sampled_from(WEIGHT_QUANTIZERS.names()), bits=st.integers(2, 6),
       seed=st.integers(0, 10_000))
def test_forward_is_integer_times_scale_within_range(scheme, bits, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(4, 3, 3, 3, generator=g) * 0.3
    quant = weight_quantizer(scheme, bits)
    q, scale = quant.integer(w)
    assert torch.allclose(quant(w), q * scale, atol=1e-7)
    assert len(torch.unique(q)) <= quant.levels()
    bound = 2 ** bits - 1 if scheme == "dorefa" else 2 ** (bits - 1) - 1
    assert int(q.abs().max()) <= bound
    if scheme == "dorefa":
        assert bool((q % 2 != 0).all())  # odd integers only: no zero level
    if scheme == "uniform":  # error at most half a step per channel
        assert bool(((quant(w) - w).abs() <= scale / 2 + 1e-7).all())


def test_ste_gradients():
    w = torch.tensor([0.7, -0.2, 0.1], requires_grad=True)
    c = torch.tensor([1.0, 2.0, 3.0])
    (UniformSymmetricWeight(3)(w) * c).sum().backward()
    assert torch.equal(w.grad, c)  # round passes the gradient straight through
    w.grad = None
    quant = DoReFaWeight(2)
    (quant(w) * c).sum().backward()
    t = torch.tanh(w.detach())
    m = t.abs().max()
    # d/dw (2 * 3 u - 3) * mean|w|/3 with u = tanh(w)/(2m) + 1/2 and m, mean|w| held constant
    expected = c * (1 - t ** 2) / m * w.detach().abs().mean()
    assert torch.allclose(w.grad, expected)


def test_activation_levels_and_gradient():
    act = ClampedUniformActivation(2, clip=1.0)
    x = torch.tensor([-0.5, 0.2, 0.5, 0.9, 1.7], requires_grad=True)
    y = act(x)
    assert torch.allclose(y, torch.tensor([0, 1 / 3, 2 / 3, 1, 1]))  # 0.5*3 = 1.5 -> 2 (half to even)
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    learn = ClampedUniformActivation(4, clip=2.0, learn_clip=True)
    assert isinstance(learn.clip, nn.Parameter)
    with pytest.raises(ConfigError, match="clip"):
        ClampedUniformActivation(4, clip=0)


def test_mask_applied_after_quantization_keeps_pruned_weights_zero():
    torch.manual_seed(0)
    conv = QuantConv2d(4, 6, 3, padding=1, bias=False, weight_quantizer=DoReFaWeight(2))
    mask = (torch.rand(6, 4, 3, 3) > 0.5).float()
    conv.set_mask(mask)
    deployed = conv.deployed_weight()
    assert bool((deployed[mask == 0] == 0).all())
    # DoReFa has no zero level: without the mask the pruned positions would be non-zero.
    assert bool((conv.weight_quantizer(conv.weight)[mask == 0] != 0).all())
    x = torch.randn(2, 4, 5, 5)
    ref = nn.functional.conv2d(x, conv.weight_quantizer(conv.weight.detach()) * mask, padding=1)
    assert torch.allclose(conv(x), ref)
    # Training steps never bring them back in the forward pass, and they get no gradient.
    opt = torch.optim.SGD(conv.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        conv(x).square().mean().backward()
        assert bool((conv.weight.grad[mask == 0] == 0).all())
        opt.step()
    assert bool((conv.deployed_weight()[mask == 0] == 0).all())
    q, scale = integer_weights(conv)
    assert bool((q[mask == 0] == 0).all()) and torch.allclose(q * scale, conv.deployed_weight())
    with pytest.raises(ConfigError, match="mask shape"):
        conv.set_mask(torch.ones(3, 3))
    conv.weight = nn.Parameter(conv.weight.detach()[:4])  # what channel removal does to the weight
    with pytest.raises(ConfigError, match="no longer matches"):
        conv(x)


def test_quantize_model_replaces_layers_and_keeps_function():
    from imcflow.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_channels=1).eval()
    x = torch.randn(2, 1, 16, 16)
    before = model(x)
    quantize_model(model, weight_bits=8, act_bits=None, scheme="uniform", skip=["fc"])
    layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert all(isinstance(m, (QuantConv2d, QuantLinear)) for n, m in layers.items() if n != "fc")
    assert type(layers["fc"]) is nn.Linear
    assert torch.allclose(model(x), before, atol=0.1)  # 8-bit weights barely move the logits
    quantize_model(model, 2, act_bits=4, scheme="dorefa")
    assert model.conv1.input_quantizer is None  # the stem sees the signed image
    assert isinstance(model.fc.input_quantizer, ClampedUniformActivation)
    # State dict round trip keeps masks.
    model.fc.set_mask(torch.ones_like(model.fc.weight).tril())
    clone = quantize_model(create_model("resnet20", num_classes=10, in_channels=1), 2, 4, "dorefa")
    clone.load_state_dict(model.state_dict())
    assert torch.equal(clone.fc.weight_mask, model.fc.weight_mask)
    with pytest.raises(ConfigError, match="scheme"):
        quantize_model(model, 2, scheme="ternary")
    with pytest.raises(ConfigError, match="no weight quantizer"):
        integer_weights(nn.Linear(2, 2))


def test_batchnorm_folding_equivalence():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=True)
    bn = nn.BatchNorm2d(5)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    bn.eval()
    x = torch.randn(4, 3, 9, 9)
    folded = fold_batchnorm(conv, bn)
    assert torch.allclose(folded(x), bn(conv(x)), atol=1e-5)
    with pytest.raises(ConfigError, match="channels"):
        fold_batchnorm(conv, nn.BatchNorm2d(4))


def test_integer_only_conv_matches_dyadic_reference():
    torch.manual_seed(2)
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    bn.eval()
    layer = integerize_conv(conv, weight_bits=4, m_in=4, m_out=3, bn=bn, relu=True)
    x = torch.randint(0, 16, (2, 3, 6, 6))  # 4-bit unsigned activations, scale 2^-4
    out = layer(x)
    assert out.dtype == torch.int64
    # Reference in float64 (exact for these dyadic numbers): real value, then round half up to 2^-3.
    real = nn.functional.conv2d(x.double() * 2.0 ** -4, layer.q.double() * 2.0 ** -layer.n, padding=1)
    real = real + layer.bias.double().view(1, -1, 1, 1) * 2.0 ** -(layer.n + 4)
    assert torch.equal(out, torch.floor(real * 2 ** 3 + 0.5).long().clamp_min(0))
    # And it approximates the float conv + BN within the weight and output quantization error.
    approx = out.double() * 2.0 ** -3
    with torch.no_grad():
        ref = torch.relu(bn(conv(x.float() * 2.0 ** -4))).double()
    # Bound: half a weight step times the window's input sum, half a bias step, half an output step.
    window_sum = nn.functional.conv2d(x.double() * 2.0 ** -4, torch.ones(1, 3, 3, 3, dtype=torch.float64),
                                      padding=1)
    bound = 2.0 ** -(layer.n + 1) * window_sum + 2.0 ** -(layer.n + 4 + 1) + 2.0 ** -(3 + 1)
    assert bool(((approx - ref).abs() <= bound + 1e-9).all())
    assert layer.shift == layer.n + 4 - 3


def test_integer_conv_worked_example():
    conv = nn.Conv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(0.75)
    layer = integerize_conv(conv, weight_bits=3, m_in=1, m_out=1)  # qmax 3: n = floor(log2(4)) = 2
    assert (layer.n, int(layer.q.flatten()[0])) == (2, 3)
    assert int(layer(torch.tensor([[[[5]]]])).item()) == 4  # (15 + 2) >> 2; 0.75*2.5 = 1.875 -> 2.0
