"""archlab: the course's CNN architectures as real PyTorch modules, and exactly what they cost.

The public API is imported lazily, so that ``archlab --help`` does not import torch.
"""

__version__ = "0.1.0"

__all__ = ["build", "count", "list_models", "resolve", "UserError", "__version__"]


def __getattr__(name: str):
    if name in ("build", "count", "resolve"):
        from archlab import api

        return getattr(api, name)
    if name == "list_models":
        from archlab.registry import list_models

        return list_models
    if name == "UserError":
        from archlab.errors import UserError

        return UserError
    raise AttributeError(f"module 'archlab' has no attribute '{name}'")
