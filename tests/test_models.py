"""Registry-parametrized model tests: a new model is tested as soon as it is registered."""

import pytest
import torch

import archlab
from archlab.trace.run import trace
from archlab.models.catalog import get_model_info

# Models whose output is not (N, 1000) class scores.
OUTPUTS = {
    "lenet": [(1, 10)],
    "lenet5": [(1, 10)],
    "fcn32s": [(1, 21, 500, 500)],
    "fcn16s": [(1, 21, 500, 500)],
    "fcn8s": [(1, 21, 500, 500)],
    "unet": [(1, 2, 388, 388)],
    "hourglass": [(1, 16, 64, 64)] * 8,
}

MODELS = archlab.list_models()


def _params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_builds_and_runs_on_meta_with_the_right_output(name):
    info = get_model_info(name)
    with torch.device("meta"):
        model = info.build()
    assert isinstance(model, torch.nn.Module)
    assert model.training, "builders return models in their default (training) mode"
    tr = trace(model, torch.empty(1, *info.input_shape(), device="meta"))
    shapes = [tr.values[v].shape for v in tr.outputs]
    assert shapes == OUTPUTS.get(name, [(1, 1000)])
    assert model.training, "the trace restores the model's mode"


@pytest.mark.parametrize("name", [n for n in MODELS if get_model_info(n).reference])
def test_parameter_count_equals_the_published_reference(name):
    info = get_model_info(name)
    with torch.device("meta"):
        model = info.build(**info.reference.options)
    assert _params(model) == info.reference.params, info.reference.source


def test_every_family_has_a_paper_and_a_default_input():
    for name in MODELS:
        info = get_model_info(name)
        assert info.paper and info.family
        c, h, w = info.input_shape()
        assert c in (1, 3) and h >= 16 and w >= 16


@pytest.mark.parametrize(
    "spec, params",
    [
        # numbers the papers state exactly, reproduced by the models
        ("lenet", 9_760),  # LeCun et al. 1989: "9760 free parameters"
        ("lenet5", 60_840),  # LeCun et al. 1998, C1..F6 plus the 84x10 RBF layer
        ("alexnet", 60_965_224),  # the 2012 two-GPU layout, summed layer by layer
        ("vgg16c", 133_638_952),  # configuration C: vgg13 plus three 1x1 convolutions
        ("inception_v3", 23_834_568),  # torchvision's count less its auxiliary head
        ("mobilenet@alpha=0.5", 1_331_592),  # TF-slim's rounding max(int(c*alpha), 8)
    ],
)
def test_parameter_counts_without_a_single_reference(spec, params):
    assert _params(archlab.resolve(spec).build(device="meta")) == params


def test_paper_and_v1_5_resnets_differ_only_in_stride_placement():
    paper = archlab.count("resnet50", depth=0)
    v15 = archlab.count("resnet50_v1_5", depth=0)
    assert paper.params == v15.params
    # The paper's layout subsamples before the 3x3 convolutions of each stage's first block.
    assert paper.macs == 3_857_973_248
    assert v15.macs == 4_089_184_256  # the conv+linear count the peer tools give for torchvision's ResNet-50


def test_options_reach_the_builders():
    assert len(archlab.count("hourglass@stacks=2", depth=0).output_shapes) == 2
    assert archlab.count("googlenet@num_classes=10", depth=0).output_shapes == ((1, 10),)
    small = archlab.count("mobilenet_v2@alpha=0.5", depth=0)
    assert small.macs < archlab.count("mobilenet_v2", depth=0).macs / 2


def test_efficientnet_phi_zero_is_b0():
    b0 = archlab.count("efficientnet_b0", depth=0)
    phi0 = archlab.count("efficientnet_phi@phi=0", depth=0)
    assert (phi0.params, phi0.macs, phi0.input_shape) == (b0.params, b0.macs, b0.input_shape)


@pytest.mark.parametrize("spec, message", [
    ("mobilenet@alpha=0", "alpha"),
    ("mobilenet_v2@alpha=-1", "alpha"),
    ("hourglass@stacks=0", "stacks"),
    ("efficientnet_phi@phi=-1", "phi"),
    ("resnet50@num_classes=0", "num_classes"),
])
def test_invalid_builder_options_are_user_errors(spec, message):
    with pytest.raises(archlab.UserError, match=message):
        archlab.count(spec, depth=0)
