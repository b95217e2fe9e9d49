"""``archlab rf --effective``: the effective receptive field (issue 26).

The metrics are checked on hand-made maps (an exact Gaussian, a box of known side); the gradient maps on
small convolution stacks whose input gradient is known in closed form (one conv: its |kernel|; two 3x3
convs of ones: the outer product of 1 2 3 2 1); the command's contract (bad inputs in one line, the
model left as found, the memory guard, the formats) on small models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import archlab
from archlab.analysis.erf import THRESHOLDS, erf_metrics, fit_gaussian, growth_exponent, square_sides
from archlab.errors import UserError
from archlab.measure.erf import gradient_maps, set_uniform
from conftest import assert_one_line_error

TRIANGLE = np.array([1.0, 2.0, 3.0, 2.0, 1.0])  # two 3x3 convs of ones: each axis's count of paths


def _gaussian(shape, centre, sy, sx, a=2.5):
    ys = np.arange(shape[0]) - centre[0]
    xs = np.arange(shape[1]) - centre[1]
    return a * np.exp(-ys[:, None] ** 2 / (2 * sy ** 2) - xs[None, :] ** 2 / (2 * sx ** 2))


# --- the metrics on hand-made maps --------------------------------------------------------------------


@pytest.mark.parametrize("centre,sigma", [((31.0, 32.0), (3.0, 2.0)), ((40.5, 20.5), (5.5, 7.25))])
def test_an_exact_gaussian_gives_its_sigma_back_and_no_residual(centre, sigma):
    m = erf_metrics(_gaussian((80, 64), centre, *sigma), centre)
    assert m.sigma == pytest.approx(sigma, rel=1e-6)
    assert m.fit_residual < 1e-6


def test_a_box_gives_its_side_as_erf95_and_its_area_ratios():
    box = np.zeros((31, 40))
    box[11:20, 16:25] = 1.0  # a 9 x 9 box around (15, 20)
    m = erf_metrics(box, (15.0, 20.0))
    assert m.erf95 == 9
    # 81 equal pixels: 20% and 30% need 25 of them (side 5), 50% 49 (side 7), 99% all (side 9)
    sides = {20: 5, 30: 5, 50: 7, 99: 9}
    assert m.area_ratio == {t: sides[t] ** 2 / (31 * 40) for t in THRESHOLDS}


def test_a_box_on_a_half_pixel_centre_has_an_even_side():
    box = np.zeros((20, 20))
    box[5:15, 5:15] = 1.0  # 10 x 10 around (9.5, 9.5)
    assert erf_metrics(box, (9.5, 9.5)).erf95 == 10


def test_erf95_is_the_smallest_square_holding_95_percent():
    # a centre pixel of 95 and a ring of 5 around it: the centre alone holds exactly 95%
    m = np.zeros((9, 9))
    m[4, 4] = 95.0
    m[3, 3] = m[5, 5] = 2.5
    assert square_sides(m, (4.0, 4.0), [0.95, 0.96, 1.0]) == [1, 3, 3]


def test_a_square_may_extend_past_the_map():
    # the mass sits at the border, the centre far from it: the square reaches past the map
    m = np.zeros((10, 10))
    m[0, 0] = 1.0
    assert square_sides(m, (6.0, 6.0), [0.95]) == [13]


@pytest.mark.parametrize("bad,needle", [(np.zeros(5), "(H, W)"), (-np.ones((3, 3)), "negative"),
                                        (np.full((3, 3), np.nan), "NaN")])
def test_bad_maps_are_refused_in_one_line(bad, needle):
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        erf_metrics(bad, (1.0, 1.0))


def test_an_empty_map_has_no_field():
    m = erf_metrics(np.zeros((5, 5)), (2.0, 2.0))
    assert (m.erf95, m.sigma, m.fit_residual) == (0, (0.0, 0.0), 0.0)


def test_growth_exponent_is_the_slope_of_log_sigma_on_log_depth():
    depths = [4, 8, 16, 32, 64]
    assert growth_exponent(depths, [1.7 * math.sqrt(n) for n in depths]) == pytest.approx(0.5, abs=1e-12)
    assert growth_exponent(depths, [(n, n) for n in depths]) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(UserError, match="two or more"):
        growth_exponent([4], [2.0])
    with pytest.raises(UserError, match="positive"):
        growth_exponent([0, 4], [1.0, 2.0])


# --- the gradient maps against closed forms -------------------------------------------------------------


def _ones_stack(channels=1, relu=False) -> nn.Sequential:
    layers = [nn.Conv2d(1, channels, 3, padding=1, bias=False), *([nn.ReLU(inplace=True)] if relu else []),
              nn.Conv2d(channels, 1, 3, padding=1, bias=False)]
    net = nn.Sequential(*layers)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0)
    return net


def test_one_conv_gives_its_absolute_kernel_whatever_the_input():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = torch.randn(5, 2, 9, 9)
    maps = gradient_maps(conv, x, {"": conv})
    expected = np.zeros((9, 9))
    # d(sum over channels of the unit at (4, 4))/d x[c] = sum over output channels of the kernel, per input channel
    kernel = conv.weight.detach().double().sum(0).abs().sum(0).numpy()
    expected[3:6, 3:6] = kernel
    np.testing.assert_allclose(maps[""], expected, rtol=1e-6, atol=1e-12)


def test_two_convs_of_ones_give_the_outer_product_of_1_2_3_2_1():
    net = _ones_stack()
    maps = gradient_maps(net, torch.randn(3, 1, 11, 11), {"0": net[0], "1": net[1]})
    expected = np.zeros((11, 11))
    expected[3:8, 3:8] = np.outer(TRIANGLE, TRIANGLE)
    np.testing.assert_allclose(maps["1"], expected, rtol=1e-6)
    first = np.zeros((11, 11))
    first[4:7, 4:7] = 1.0
    np.testing.assert_allclose(maps["0"], first, rtol=1e-6)


def test_a_layer_followed_by_an_inplace_relu_is_measured_before_it():
    net = _ones_stack(channels=4, relu=True)
    maps = gradient_maps(net, torch.randn(4, 1, 9, 9), {"0": net[0], "1": net[1]})
    first = np.zeros((9, 9))
    first[3:6, 3:6] = 4.0  # four output channels, each a 3x3 kernel of ones: linear, the ReLU after it unseen
    np.testing.assert_allclose(maps["0"], first, rtol=1e-6)


def test_samples_are_averaged_each_with_its_own_gradient():
    # y = x^2 per pixel: |dy/dx| at the centre is 2|x|, averaged over the samples (not |2 sum x|)
    class Square(nn.Module):
        def forward(self, x):
            return x * x

    net = Square()
    x = torch.tensor([1.0, -3.0]).reshape(2, 1, 1, 1).expand(2, 1, 3, 3).contiguous()
    maps = gradient_maps(net, x, {"": net})
    assert maps[""][1, 1] == pytest.approx(4.0)  # (2 + 6) / 2


def test_uniform_sets_each_layer_to_one_over_its_fan_in():
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(3, 4, 1, groups=1), nn.Linear(5, 6),
                        nn.ConvTranspose2d(4, 2, 2, stride=2))
    set_uniform(net)
    assert torch.all(net[0].weight == 1 / 18) and torch.all(net[0].bias == 0)
    assert torch.all(net[1].weight == 1 / 3) and torch.all(net[2].weight == 1 / 5)
    assert torch.all(net[3].weight == 1 / 16)  # 4 input channels x a 2x2 kernel


# --- the API on small models ------------------------------------------------------------------------------


def test_the_api_measures_each_layer_beside_its_exact_field():
    net = _ones_stack()
    r = archlab.effective_receptive_field(net, input_size=(1, 15, 15), weights="given", samples=2, depth=1)
    assert [lay.name for lay in r.layers] == ["0", "1"]
    last = r.layers[1]
    assert (last.rf, last.window, last.centre, last.unit) == ((5, 5), (5, 9, 5, 9), (7.0, 7.0), (7, 7))
    expected = np.zeros((15, 15))
    expected[5:10, 5:10] = np.outer(TRIANGLE, TRIANGLE)
    np.testing.assert_allclose(last.heatmap, expected, rtol=1e-6)
    # 81 in all; the centre 3x3 holds 49: ERF95 takes the whole 5 x 5
    assert last.metrics.erf95 == 5 and last.erf95_ratio == 1.0
    assert (r.samples, r.weights, r.seeds, r.device) == (2, "given", (0,), "cpu")


def test_uniform_weights_make_any_stack_the_closed_form():
    net = _ones_stack()
    with torch.no_grad():
        for m in net:
            m.weight.normal_()
    r = archlab.effective_receptive_field(net, input_size=(1, 15, 15), weights="uniform", samples=1, depth=1)
    expected = np.zeros((15, 15))
    expected[5:10, 5:10] = np.outer(TRIANGLE, TRIANGLE) / 81  # each layer's weights 1/9
    np.testing.assert_allclose(r.layers[1].heatmap, expected, rtol=1e-6)


def test_the_users_model_is_left_as_found():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Conv2d(2, 2, 3))
    net.train()
    net[3].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for weights in ("init", "uniform", "given"):
        archlab.effective_receptive_field(net, input_size=(1, 12, 12), weights=weights, samples=2)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net.training and all(m.training for m in net.modules())
    assert [p.requires_grad for p in net.parameters()] == [True, True, True, True, False, True]
    assert all(not m._forward_hooks for m in net.modules())


def test_init_averages_seeded_builds_and_says_which():
    r = archlab.effective_receptive_field("lenet", samples=6, depth=1)
    assert r.weights == "init" and r.seeds == (0, 1, 2, 3)
    other = archlab.effective_receptive_field("lenet", samples=6, depth=1, seed=7)
    assert other.seeds == (7, 8, 9, 10)
    h1 = [lay.name for lay in r.layers].index("h1")  # LeNet's first convolution (pad1 before it has no weights)
    assert not np.array_equal(r.layers[h1].heatmap, other.layers[h1].heatmap)
    again = archlab.effective_receptive_field("lenet", samples=6, depth=1)
    assert all(np.array_equal(a.heatmap, b.heatmap) for a, b in zip(r.layers, again.layers))


def test_given_weights_are_the_factorys_seeded_build():
    from archlab.trace.inputs import seeded

    r = archlab.effective_receptive_field("lenet", samples=1, weights="given", layer="act2")
    with seeded(0):
        model = archlab.build("lenet").eval()
    x = torch.randn((1, *r.input_shape[1:]), generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    taken = []
    model.act2.register_forward_hook(lambda _m, _a, out: taken.append(out))
    model(x)
    out = taken[0]
    (g,) = torch.autograd.grad(out[:, :, out.shape[2] // 2, out.shape[3] // 2].sum(), x)
    assert r.layers[0].metrics.erf95 > 1
    # float32 gradients, summed in another order (archlab's copy runs channels-last): equal to float32's precision
    np.testing.assert_allclose(r.layers[0].heatmap, g.abs().sum(1)[0].double().numpy(), rtol=1e-4, atol=1e-8)


def test_init_of_an_nn_module_redraws_its_layers_and_says_so(cli):
    net = nn.Sequential(nn.Conv2d(1, 1, 3))
    with torch.no_grad():
        net[0].weight.fill_(5.0)
    given = archlab.effective_receptive_field(net, input_size=(1, 7, 7), weights="given", samples=1)
    assert given.layers[0].heatmap.max() == pytest.approx(5.0)  # |kernel|, as given
    init = archlab.effective_receptive_field(net, input_size=(1, 7, 7), samples=4)
    # PyTorch's default: uniform within 1/sqrt(fan_in) = 1/3
    assert 0 < init.layers[0].heatmap.max() <= 1 / 3 and torch.all(net[0].weight == 5.0)
    assert any("reset_parameters()" in note for note in init.notes)
    from archlab.report.erf import render_erf

    assert "note: init of a model given as an nn.Module" in render_erf(init, "table")


def test_a_container_and_its_last_child_share_one_map():
    net = nn.Sequential(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)))
    r = archlab.effective_receptive_field(net, input_size=(1, 11, 11), weights="given", samples=1, depth=2)
    names = {lay.name: lay for lay in r.layers}
    assert set(names) == {"0", "0.0", "0.1"}
    assert np.array_equal(names["0"].heatmap, names["0.1"].heatmap)


def test_depth_0_measures_the_layer_that_holds_the_models_field():
    r = archlab.effective_receptive_field("lenet", samples=1, depth=0)
    top = archlab.receptive_field("lenet", depth=0).rf
    assert [lay.name for lay in r.layers] == [top["name"]] == ["act2"]
    assert list(r.layers[0].rf) == top["rf_hw"] == [13, 13]


def test_the_model_method_is_the_same_analysis():
    m = archlab.Model("lenet")
    a = m.effective_receptive_field(layer="act2", samples=2)
    b = archlab.effective_receptive_field("lenet", layer="act2", samples=2)
    assert [lay.name for lay in a.layers] == ["act2"]
    assert np.array_equal(a.layers[0].heatmap, b.layers[0].heatmap)


def test_progress_is_told_each_backward():
    seen = []
    archlab.effective_receptive_field("lenet", samples=3, depth=1, progress=lambda d, t, w: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == list(range(1, len(seen) + 1))


# --- the command -------------------------------------------------------------------------------------------


def test_rf_effective_table(cli):
    r = cli("rf", "lenet", "--effective", "--samples", "4")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[1].startswith("effective receptive field: 4 random inputs (standard normal) on cpu, weights the "
                               "model's own initialization (4 builds, seeds 0..3")
    assert any(line.startswith("stable: ") for line in lines[:5])
    header = next(line for line in lines if line.startswith("name"))
    for column in ("RF", "ERF95", "ERF95/RF", "sigma", "fit residual", "area 20%", "area 99%"):
        assert column in header


def test_rf_effective_json_is_the_result(cli):
    r = cli("rf", "lenet", "--effective", "--samples", "2", "--weights", "uniform", "-f", "json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    api = archlab.effective_receptive_field("lenet", samples=2, weights="uniform")
    assert d == json.loads(json.dumps(api.to_dict()))
    assert d["weights"] == "uniform" and d["samples"] == 2 and "units" in d
    assert set(d["layers"][0]) >= {"rf", "window", "centre", "sigma", "fit_residual", "erf95", "erf95_ratio",
                                   "area_ratio"}


def test_rf_effective_csv_and_md(cli):
    csv = cli("rf", "lenet", "--effective", "--samples", "2", "-f", "csv")
    md = cli("rf", "lenet", "--effective", "--samples", "2", "-f", "md")
    assert csv.code == md.code == 0
    api = archlab.effective_receptive_field("lenet", samples=2)
    rows = csv.out.splitlines()
    assert rows[0].startswith("name,type,depth,output_shape,rf_h,rf_w,window_y0")
    assert len(rows) == 1 + len(api.layers)
    first = api.layers[0]
    assert rows[1].split(",")[12] == str(first.metrics.erf95)
    assert md.out.startswith("### lenet") and "| name | type | output | RF | ERF95 |" in md.out


def test_rf_effective_layer(cli):
    r = cli("rf", "lenet", "--effective", "--samples", "2", "--layer", "act2", "-f", "json")
    assert r.code == 0, r.err
    assert [lay["name"] for lay in json.loads(r.out)["layers"]] == ["act2"]


@pytest.mark.parametrize("args,needles", [
    (("--effective", "--samples", "0"), ("--samples", "1 or more")),
    (("--effective", "--weights", "trained"), ("unknown --weights 'trained'", "init, uniform, given")),
    (("--effective", "--layer", "nope"), ("--layer 'nope' names no module",)),
    (("--effective", "--layer", "h3"), ("--layer 'h3' has no spatial output",)),
    (("--weights", "uniform"), ("--weights", "add --effective")),
    (("--samples", "8"), ("--samples", "add --effective")),
    (("--layer", "act2"), ("--layer", "add --effective")),
    (("--seed", "3"), ("--seed", "add --effective")),
    (("--effective", "--seed", "-1"), ("seed must be",)),
])
def test_rf_effective_bad_inputs(cli, args, needles):
    assert_one_line_error(cli("rf", "lenet", *args), *needles)


def test_rf_effective_refuses_a_model_without_an_image_input(cli, tmp_path):
    path = tmp_path / "mlp.py"
    path.write_text("from torch import nn\n\ndef mlp():\n    return nn.Sequential(nn.Linear(8, 4), nn.ReLU())\n")
    assert_one_line_error(cli("rf", f"{path}:mlp", "--input-size", "8", "--effective"), "needs an image input")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for a machine without a GPU")
def test_rf_effective_device_cuda_is_refused_without_a_gpu(cli):
    assert_one_line_error(cli("rf", "lenet", "--effective", "--device", "cuda"), "no CUDA GPU")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_rf_effective_on_cuda_matches_the_cpu():
    cpu = archlab.effective_receptive_field("lenet", samples=4, weights="uniform")
    gpu = archlab.effective_receptive_field("lenet", samples=4, weights="uniform", device="cuda")
    assert gpu.device == "cuda"
    for a, b in zip(cpu.layers, gpu.layers):
        np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-4, atol=1e-7)
        assert a.metrics.erf95 == b.metrics.erf95


def test_rf_effective_shows_a_progress_bar_of_the_backwards(cli, monkeypatch):
    from contextlib import contextmanager

    import archlab.cli.progress

    seen = []

    @contextmanager
    def recording(description):
        seen.append(description)
        yield lambda done, total, what: seen.append((done, total, what))

    monkeypatch.setattr(archlab.cli.progress, "progress", recording)
    r = cli("rf", "lenet", "--effective", "--samples", "2", "--layer", "act2", "--weights", "given")
    assert r.code == 0, r.err
    # one build, one batch of two samples, one layer: one backward
    assert seen == ["effective receptive field", (1, 1, "ERF: act2")]


def test_rf_effective_is_guarded_by_the_free_memory(cli, monkeypatch):
    from archlab.measure import guard

    monkeypatch.setattr(guard, "available_bytes", lambda device="cpu": 1000)
    assert_one_line_error(cli("rf", "lenet", "--effective"), "rf --effective", "needs about", "--force")


def test_fit_gaussian_of_a_point_is_narrow():
    m = np.zeros((9, 9))
    m[4, 4] = 1.0
    sigma, residual = fit_gaussian(m, (4.0, 4.0))
    assert max(sigma) < 0.3 and residual < 1e-3
