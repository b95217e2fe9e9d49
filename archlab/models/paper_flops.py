"""Papers whose "FLOPs" are multiply-adds: what they print is archlab's MACs, not its FLOPs
(= 2 x MACs). ``archlab count`` says so beside the number for models of these families."""

from __future__ import annotations

from typing import Any

# family -> (the paper and where it prints the number, an example of the printed value)
PAPER_FLOPS: dict[str, tuple[str, str]] = {
    "resnet": ("He et al. 2016 (ResNet), Table 1", "ResNet-50: 3.8 x 10^9 FLOPs"),
    "efficientnet": ("Tan & Le 2019 (EfficientNet), Table 2", "EfficientNet-B0: 0.39B FLOPs"),
    # Figure 3 (right) plots ImageNet top-1 error against "#flops" for DenseNets and ResNets; its
    # ResNet-50 sits at its own paper's 3.8 x 10^9, multiply-adds, and the DenseNets on the same axis
    "densenet": ("Huang et al. 2017 (DenseNet), Figure 3 (right)",
                 "DenseNets and ResNets on one axis of #flops, ResNet-50 at its paper's 3.8 x 10^9"),
}


def paper_flops(model: Any) -> dict[str, str] | None:
    """For a registered model's name or spec whose paper calls multiply-adds "FLOPs": the paper,
    an example, and what the word means there; None otherwise (user files and modules included:
    nothing is loaded to answer)."""
    from archlab.errors import UserError
    from archlab.models.catalog import get_model_info
    from archlab.models.external import is_external
    from archlab.spec import ModelSpec, parse_spec

    if isinstance(model, str):
        try:
            model = parse_spec(model)
        except UserError:
            return None
    if not isinstance(model, ModelSpec) or is_external(model.name):
        return None
    try:
        family = get_model_info(model.name).family
    except UserError:
        return None
    if family not in PAPER_FLOPS:
        return None
    paper, example = PAPER_FLOPS[family]
    return {"paper": paper, "example": example,
            "meaning": "the paper's 'FLOPs' are multiply-adds: compare them with archlab's MACs, not its FLOPs"}
