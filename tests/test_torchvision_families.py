"""torchvision: names every family's builders (issue 18), tested against a stub torchvision:
the registry's only torchvision wheel is a CUDA build that does not import against the CPU torch
here. What is exercised: archlab's resolution through ``torchvision.models.list_models(module=...)``
of the classification, segmentation, video, optical-flow, quantization and detection modules, each
family's default input, ``weights=None`` and ``weights_backbone=None`` (nothing downloaded),
options passed through (``aux_loss=true``), ``image_size`` setting the input, and a detection-like
forward that reads values counted with --engine real. Not exercised: torchvision's real builders."""

import sys
import types

import pytest
import torch
from torch import nn

from conftest import assert_one_line_error

FAMILIES = {
    "": ["resnet18", "vit_h_14"],
    "segmentation": ["fcn_resnet50"],
    "video": ["r3d_18", "mvit_v2_s"],
    "optical_flow": ["raft_small"],
    "quantization": ["quantized_resnet50"],
    "detection": ["fasterrcnn_resnet50_fpn"],
}


class Seen(nn.Module):
    """Records the input shapes its forward gets; one conv on the first input's channels."""

    def __init__(self, channels=3, **options):
        super().__init__()
        self.options = options
        self.conv = nn.Conv2d(channels, 4, 1)

    def forward(self, *xs):
        x = xs[0]
        if x.dim() == 5:  # video: N, C, T, H, W
            x = x[:, :, 0]
        return self.conv(x) + sum(y.sum() for y in xs[1:])


class Detector(Seen):
    def forward(self, x):
        keep = torch.nonzero(x[0, 0, :, 0] > -100).numel()  # reads values, as nms does
        return self.conv(x)[..., :keep]


def get_model(name, weights="DEFAULT", **options):
    assert weights is None, "archlab must never ask for pretrained weights"
    family = next(f for f, names in FAMILIES.items() if name in names)
    if family in ("segmentation", "detection"):
        assert "weights_backbone" in options and options["weights_backbone"] is None, "a backbone download"
    return (Detector if family == "detection" else Seen)(**options)


@pytest.fixture
def stub_torchvision(monkeypatch):
    tv = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    for family in FAMILIES:
        if family:
            module = types.ModuleType(f"torchvision.models.{family}")
            module.NAMES = FAMILIES[family]
            setattr(models, family, module)
    models.NAMES = FAMILIES[""]
    models.list_models = lambda module=None: list(module.NAMES)
    models.get_model = get_model
    tv.models = models
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    return tv


@pytest.mark.parametrize("name, head", [
    ("resnet18", "input 1x3x224x224"),
    ("fcn_resnet50", "input 1x3x520x520"),
    ("r3d_18", "input 1x3x16x112x112"),
    ("mvit_v2_s", "input 1x3x16x224x224"),
    ("raft_small", "inputs 1x3x224x224, 1x3x224x224"),
    ("quantized_resnet50", "input 1x3x224x224"),
    ("vit_h_14@image_size=518", "input 1x3x518x518"),
    ("fcn_resnet50@aux_loss=true", "input 1x3x520x520"),
])
def test_every_family_resolves_with_its_default_input(cli, stub_torchvision, name, head):
    r = cli("count", f"torchvision:{name}", "--depth", "0")
    assert r.code == 0, r.err
    assert head in r.out.splitlines()[0], r.out


def test_detection_reads_values_and_counts_with_engine_real(cli, stub_torchvision):
    assert_one_line_error(cli("count", "torchvision:fasterrcnn_resnet50_fpn", "--input-size", "3,32,32"),
                          "--engine real")
    r = cli("count", "torchvision:fasterrcnn_resnet50_fpn", "--input-size", "3,32,32", "--engine", "real",
            "--format", "json")
    assert r.code == 0, r.err
    assert r.json()["macs"] == 32 * 32 * 4 * 3


def test_an_unknown_name_suggests_from_every_family(cli, stub_torchvision):
    assert_one_line_error(cli("count", "torchvision:raft_smal"), "did you mean raft_small")
