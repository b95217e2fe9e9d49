import pytest

import archlab
from archlab.errors import UserError
from archlab.models.catalog import get_model_info
from archlab.models._registry import register_model

EXPECTED = {
    "lenet", "lenet5", "alexnet", "alexnet_owt",
    "vgg11", "vgg11_lrn", "vgg13", "vgg16c", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "googlenet", "bn_inception", "inception_v2", "inception_v3", "inception_resnet_v2",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnet50_v1_5", "resnet101_v1_5", "resnet152_v1_5",
    "densenet121", "densenet169", "densenet201", "densenet161",
    "mobilenet", "mobilenet_conv", "mobilenet_v2",
    *(f"efficientnet_b{i}" for i in range(8)), "efficientnet_phi",
    "fcn32s", "fcn16s", "fcn8s", "unet", "hourglass",
}


def test_registered_names_are_the_interface():
    assert set(archlab.list_models()) == EXPECTED


def test_list_models_pattern_and_natural_order():
    assert archlab.list_models("resnet1*") == ["resnet18", "resnet101", "resnet101_v1_5", "resnet152",
                                              "resnet152_v1_5"]
    assert archlab.list_models("efficientnet_b?")[:3] == ["efficientnet_b0", "efficientnet_b1", "efficientnet_b2"]
    assert archlab.list_models("nothing*") == []


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="registered twice"):
        register_model(family="resnet", paper="x", name="resnet50")(lambda: None)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UserError, match=r"unknown model 'resnet5'; did you mean resnet50"):
        get_model_info("resnet5")
    with pytest.raises(UserError, match="mobilenet_v2"):
        get_model_info("mobilenetv2")


def test_build_returns_a_real_module_that_runs():
    import torch

    model = archlab.build("lenet")
    assert isinstance(model, torch.nn.Module)
    with torch.no_grad():
        y = model.eval()(torch.randn(2, 1, 16, 16))
    assert y.shape == (2, 10) and torch.isfinite(y).all()


def test_build_accepts_spec_and_rejects_unknown_option():
    m = archlab.build("mobilenet@alpha=0.25")
    assert sum(p.numel() for p in m.parameters()) < 1_000_000
    with pytest.raises(UserError, match="has no option 'depth'"):
        archlab.build("resnet18", depth=3)
