"""Looking models up: the zoo's names and a model's ``ModelInfo``, for a zoo name or an external
model (``torchvision:``, ``timm:``, ``file.py:factory``).

The first lookup imports every family module listed in ``archlab.models.FAMILIES`` (importing
a family registers its models in ``archlab.models._registry``).
"""

from __future__ import annotations

import difflib
import importlib

from archlab.errors import UserError, shorten
from archlab.models import FAMILIES
from archlab.models._registry import MODELS, ModelInfo, natural_key, match_names
from archlab.models.external import external_info, file_hint, is_external, looks_like_a_file


def _ensure_loaded() -> None:
    for family in FAMILIES:
        importlib.import_module(f"archlab.models.{family}")


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, naturally sorted; ``pattern`` is an fnmatch glob (case-insensitive),
    or a plain word that the names contain."""
    _ensure_loaded()
    return match_names(sorted(MODELS, key=natural_key), pattern)


def get_model_info(name: str) -> ModelInfo:
    if is_external(name):
        return external_info(name)
    _ensure_loaded()
    try:
        return MODELS[name]
    except KeyError:
        if looks_like_a_file(name):  # 'archlab count mycnn.py': the factory is missing, not the model
            raise UserError(file_hint(name)) from None
        key = name.lower()  # 'RESNET50' and 'ResNet50' find resnet50
        close = difflib.get_close_matches(key, list(MODELS), n=3, cutoff=0.5)
        if not close:
            close = [n for n in MODELS if n.startswith(key[:3])][:3]
        hint = f"; did you mean {', '.join(close)}?" if close else "; see 'archlab list'"
        raise UserError(f"unknown model '{shorten(name)}'{hint}") from None
