"""archlab: the course's CNN architectures as real PyTorch modules, and exactly what they cost.

The public API is imported lazily, so that ``archlab --help`` does not import torch.
"""

__version__ = "0.1.0"

__all__ = ["analyze", "build", "compare", "count", "dwsc", "list_models", "memory", "receptive_field", "resolve",
           "trace_layers", "UserError", "__version__"]


def __getattr__(name: str):
    if name in ("build", "count", "resolve"):
        from archlab import api

        return getattr(api, name)
    if name == "analyze":
        from archlab.reporting import analyze

        return analyze
    if name in ("receptive_field", "trace_layers"):
        from archlab import views

        return getattr(views, name)
    if name == "memory":
        from archlab.memory_api import memory

        return memory
    if name == "dwsc":
        from archlab.laws import dwsc

        return dwsc
    if name == "compare":
        from archlab.laws import compare_models

        return compare_models
    if name == "list_models":
        from archlab.registry import list_models

        return list_models
    if name == "UserError":
        from archlab.errors import UserError

        return UserError
    raise AttributeError(f"module 'archlab' has no attribute '{name}'")
