"""archlab/models/inception_factorized.py: the paper's Inception-v2 (Szegedy et al. 2016, Table 1)
and BN-Inception (Ioffe & Szegedy 2015): factorized modules, parameter counts by hand, verify claims,
receptive fields."""

import pytest
import torch
from torch import nn

import archlab
from archlab.trace.run import trace
from archlab.models.catalog import get_model_info


def _build(name):
    with torch.device("meta"):
        return get_model_info(name).build()


def _kernels(model):
    return {m.kernel_size for m in model.modules() if isinstance(m, nn.Conv2d)}


def _traced(name):
    info = get_model_info(name)
    model = _build(name)
    return model, trace(model, torch.empty(1, *info.input_shape(), device="meta"))


def _params(model):
    return sum(p.numel() for p in model.parameters())


# --- module structure ---------------------------------------------------------------------------


def test_no_5x5_kernel_anywhere_in_the_factorized_networks():
    assert (5, 5) in _kernels(_build("googlenet"))  # the module they factorize
    for name in ("inception_v2", "bn_inception"):
        kernels = _kernels(_build(name))
        assert (5, 5) not in kernels and all(max(k) <= 7 for k in kernels), name
    assert _kernels(_build("inception_v2")) == {(1, 1), (3, 3), (1, 7), (7, 1), (1, 3), (3, 1)}
    assert _kernels(_build("bn_inception")) == {(7, 7), (1, 1), (3, 3)}  # 7x7: the depthwise first layer


def test_inception_v3_keeps_its_5x5_only_in_mixed_5b_to_5d():
    model = _build("inception_v3")
    with_5x5 = sorted(n.split(".")[0] for n, m in model.named_modules()
                      if isinstance(m, nn.Conv2d) and m.kernel_size == (5, 5))
    # the auxiliary head is off by default; its 5x5 is not a module's branch
    assert with_5x5 == ["Mixed_5b", "Mixed_5c", "Mixed_5d"]


def test_figure5_modules_at_35x35_replace_the_5x5_by_two_3x3():
    model, tr = _traced("inception_v2")
    assert len(model.mixed_35) == 3
    for i, module in enumerate(model.mixed_35):
        double = [c.conv.kernel_size for c in module.branch3x3dbl]
        assert double == [(1, 1), (3, 3), (3, 3)]
        call = next(c for c in tr.calls if c.name == f"mixed_35.{i}")
        assert tr.values[call.outputs[0]].shape == (1, 288, 35, 35)


def test_figure6_pairs_1x7_and_7x1_at_17x17():
    model, tr = _traced("inception_v2")
    assert len(model.mixed_17) == 5
    convs = [c for c in tr.calls if c.type == "Conv2d"]
    asym = [c for c in convs if tuple(c.attrs["kernel_size"]) in ((1, 7), (7, 1))]
    # six per Figure 6 module (a 1x7/7x1 pair, then two more pairs), one pair in the 17 -> 8 reduction
    assert len(asym) == 5 * 6 + 2
    assert all(tr.values[c.outputs[0]].shape[-2:] == (17, 17) for c in asym)
    for module in model.mixed_17:
        assert (module.branch7x7_2.conv.kernel_size, module.branch7x7_3.conv.kernel_size) == ((1, 7), (7, 1))
        chain = [getattr(module, f"branch7x7dbl_{i}").conv.kernel_size for i in range(2, 6)]
        assert chain == [(7, 1), (1, 7), (7, 1), (1, 7)]


def test_figure10_reduces_the_grid_in_parallel():
    model, tr = _traced("inception_v2")
    calls = {c.name: c for c in tr.calls}
    for name, shape_in, shape_out in (("reduction_35_17", (1, 288, 35, 35), (1, 768, 17, 17)),
                                      ("reduction_17_8", (1, 768, 17, 17), (1, 1280, 8, 8))):
        module = calls[name]
        assert tr.values[module.inputs[0]].shape == shape_in and tr.values[module.outputs[0]].shape == shape_out
        branches = [c for c in tr.calls if c.parent == module.index]
        pool = next(c for c in branches if c.type == "MaxPool2d")
        strided = [c for c in branches if c.type == "ConvBNAct" and tr.values[c.outputs[0]].shape[-1] == shape_out[-1]]
        # the pool and the first convolution of every branch read the module's input: in parallel, not
        # a pool before a convolution (Figure 9's costly or lossy alternatives)
        first_convs = [c for c in branches if c.type == "ConvBNAct" and c.inputs[0] == module.inputs[0]]
        assert pool.inputs[0] == module.inputs[0] and len(first_convs) >= 2
        assert tr.values[pool.outputs[0]].shape[-2:] == shape_out[-2:]  # a stride-2 pool
        assert len(strided) == 2  # one stride-2 convolution per convolution branch
        # the concatenation: both convolution branches and the pooled input
        assert shape_out[1] == sum(tr.values[c.outputs[0]].shape[1] for c in strided) + shape_in[1]


def test_bn_inception_stride_2_modules_pass_the_pool_through():
    model, tr = _traced("bn_inception")
    calls = {c.name: c for c in tr.calls}
    shapes = {n: tr.values[calls[n].outputs[0]].shape for n in ("inception3b", "inception3c", "inception4e")}
    assert shapes == {"inception3b": (1, 320, 28, 28), "inception3c": (1, 576, 14, 14),
                      "inception4e": (1, 1024, 7, 7)}
    assert not hasattr(model.inception3c, "branch1x1") and isinstance(model.inception3c.branch_pool, nn.MaxPool2d)
    assert all(isinstance(m, nn.BatchNorm2d) for m in [model.conv1.bn, model.conv2.bn])
    assert model.conv1.depthwise.groups == 3 and model.conv1.depthwise.out_channels == 24  # multiplier 8


def test_batch_norm_follows_every_convolution():
    for name in ("inception_v2", "bn_inception"):
        model = _build(name)
        convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
        bns = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        depthwise = 1 if name == "bn_inception" else 0  # the separable pair shares one batch norm
        assert bns == convs - depthwise, name


# --- parameter counts, by hand from the tables ------------------------------------------------------
# No published implementation has these exact layers (TF-slim's inception_v2.py, the reference for
# bn_inception's widths, keeps no batch-norm scale and a biased separable first layer; the
# Rethinking paper's own model.txt was never published), so the counts are the tables' formulas.


def _conv(kh, kw, cin, cout):
    """A convolution without bias plus its batch norm (scale and shift)."""
    return kh * kw * cin * cout + 2 * cout


def _fig5(cin):
    return (_conv(1, 1, cin, 64) + _conv(1, 1, cin, 48) + _conv(3, 3, 48, 64)
            + _conv(1, 1, cin, 64) + _conv(3, 3, 64, 96) + _conv(3, 3, 96, 96) + _conv(1, 1, cin, 64))


def _fig6(c7, cin=768):
    return (_conv(1, 1, cin, 192)
            + _conv(1, 1, cin, c7) + _conv(1, 7, c7, c7) + _conv(7, 1, c7, 192)
            + _conv(1, 1, cin, c7) + _conv(7, 1, c7, c7) + _conv(1, 7, c7, c7) + _conv(7, 1, c7, c7)
            + _conv(1, 7, c7, 192)
            + _conv(1, 1, cin, 192))


def _fig7(cin):
    return (_conv(1, 1, cin, 320) + _conv(1, 1, cin, 384) + _conv(1, 3, 384, 384) + _conv(3, 1, 384, 384)
            + _conv(1, 1, cin, 448) + _conv(3, 3, 448, 384) + _conv(1, 3, 384, 384) + _conv(3, 1, 384, 384)
            + _conv(1, 1, cin, 192))


INCEPTION_V2_BY_HAND = (
    # stem: Table 1's widths 3 -> 32 -> 32 -> 64 -> (pool) -> 80 -> 192 -> 288
    _conv(3, 3, 3, 32) + _conv(3, 3, 32, 32) + _conv(3, 3, 32, 64) + _conv(3, 3, 64, 80)
    + _conv(3, 3, 80, 192) + _conv(3, 3, 192, 288)
    + 3 * _fig5(288)
    # 35 -> 17: 3x3/2 384 | 1x1 64 -> 3x3 96 -> 3x3/2 96 | pool
    + _conv(3, 3, 288, 384) + _conv(1, 1, 288, 64) + _conv(3, 3, 64, 96) + _conv(3, 3, 96, 96)
    + sum(_fig6(c7) for c7 in (128, 160, 160, 160, 192))
    # 17 -> 8: 1x1 192 -> 3x3/2 320 | 1x1 192 -> 1x7 -> 7x1 -> 3x3/2 192 | pool
    + _conv(1, 1, 768, 192) + _conv(3, 3, 192, 320)
    + _conv(1, 1, 768, 192) + _conv(1, 7, 192, 192) + _conv(7, 1, 192, 192) + _conv(3, 3, 192, 192)
    + _fig7(1280) + _fig7(2048)
    + 2048 * 1000 + 1000
)


def _bn_module(cin, n1, r3, n3, rd, nd, proj):
    """A row of BN-Inception's table: (params, output channels); proj 0 = pass through."""
    p = (_conv(1, 1, cin, n1) if n1 else 0) + _conv(1, 1, cin, r3) + _conv(3, 3, r3, n3)
    p += _conv(1, 1, cin, rd) + _conv(3, 3, rd, nd) + _conv(3, 3, nd, nd)
    p += _conv(1, 1, cin, proj) if proj else 0
    return p, n1 + n3 + nd + (proj or cin)


def _bn_inception_by_hand():
    # separable 7x7/2: depthwise 3 -> 24 (7x7x1 each), pointwise 24 -> 64, one batch norm
    total = 7 * 7 * 24 + 24 * 64 + 2 * 64 + _conv(1, 1, 64, 64) + _conv(3, 3, 64, 192)
    cin = 192
    # #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool proj (3a .. 5b)
    for row in ((64, 64, 64, 64, 96, 32), (64, 64, 96, 64, 96, 64), (0, 128, 160, 64, 96, 0),
                (224, 64, 96, 96, 128, 128), (192, 96, 128, 96, 128, 128), (160, 128, 160, 128, 160, 96),
                (96, 128, 192, 160, 192, 96), (0, 128, 192, 192, 256, 0),
                (352, 192, 320, 160, 224, 128), (352, 192, 320, 192, 224, 128)):
        p, cin = _bn_module(cin, *row)
        total += p
    assert cin == 1024
    return total + 1024 * 1000 + 1000


def test_parameter_counts_equal_the_tables_formulas():
    assert _params(_build("inception_v2")) == INCEPTION_V2_BY_HAND == 25_954_248
    assert _params(_build("bn_inception")) == _bn_inception_by_hand() == 11_188_288


def test_costs_of_the_four_inception_networks():
    counts = {n: archlab.count(n, depth=0) for n in ("googlenet", "bn_inception", "inception_v2", "inception_v3")}
    macs = {n: c.macs for n, c in counts.items()}
    assert macs["bn_inception"] == 1_934_857_216
    assert macs["inception_v2"] == 6_352_562_784
    # factorization and batch norm: BN-Inception costs 1.22x GoogLeNet (its separable first layer is
    # cheaper than GoogLeNet's 7x7, the double 3x3 branches dearer than the 5x5 they replace)
    assert 1.2 < macs["bn_inception"] / macs["googlenet"] < 1.25


# --- verify claims --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def claims():
    from archlab.verify import verify

    result = verify(only="*inception*")
    return {r.claim.id: r for r in result.rows}


def test_the_new_claims_are_checked(claims):
    assert {"inception_v2.fig5.rf", "inception_v2.fig6.rf", "bn_inception.rf", "inception_v2.layers",
            "inception_v2.cost_vs_googlenet", "inception_v3.madds"} <= set(claims)
    assert sum(1 for i in claims if i.startswith("inception_v2.t1.")) == 20
    assert not [i for i, r in claims.items() if r.status == "FAIL"]
    assert claims["inception_v2.fig5.rf"].computed == "5x5" and claims["inception_v2.fig6.rf"].computed == "7x7"
    assert claims["inception_v2.t1.fig6.input"].computed == "17x17x768"


def test_the_papers_counts_that_the_build_does_not_reproduce_are_explained(claims):
    r = claims["inception_v2.layers"]
    assert r.computed == 54 and r.status == "known-discrepancy" and r.claim.cause == "convention"
    r = claims["inception_v2.cost_vs_googlenet"]
    assert r.status == "known-discrepancy" and r.claim.cause == "variant"
    assert r.computed == pytest.approx(6_352_562_784 / 1_582_671_872)
    r = claims["inception_v3.madds"]
    assert r.status == "known-discrepancy" and r.claim.cause == "variant" and r.computed == 5_713_216_096


# --- receptive fields -----------------------------------------------------------------------------


def _rf(layers, size=32):
    return archlab.receptive_field(nn.Sequential(*layers), input_size=(1, size, size)).rf["rf_hw"]


@pytest.mark.parametrize("single, stacked", [
    (nn.Conv2d(1, 1, 5, padding=2), [nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1)]),
    (nn.Conv2d(1, 1, 7, padding=3), [nn.Conv2d(1, 1, (1, 7), padding=(0, 3)), nn.Conv2d(1, 1, (7, 1), padding=(3, 0))]),
    (nn.Conv2d(1, 1, 3, padding=1), [nn.Conv2d(1, 1, (3, 1), padding=(1, 0)), nn.Conv2d(1, 1, (1, 3), padding=(0, 1))]),
], ids=["5x5=two 3x3", "7x7=1x7+7x1", "3x3=3x1+1x3"])
def test_a_factorized_kernel_keeps_the_field_of_the_kernel_it_replaces(single, stacked):
    assert _rf([single]) == _rf(stacked) == [single.kernel_size[0]] * 2
    assert _rf(stacked[:1]) != _rf([single])  # one half alone does not


def test_rf_command_works_for_both(cli):
    for name, rf in (("inception_v2", 1743), ("bn_inception", 891)):
        result = cli("rf", name)
        assert result.code == 0, result.err
        assert f"receptive field: {rf} input pixels at 'avgpool'" in result.out
