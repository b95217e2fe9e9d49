"""archlab: the course's CNN architectures as real PyTorch modules, and exactly what they cost.

The public API is imported lazily, so that ``archlab --help`` does not import torch.
"""

__version__ = "0.1.0"

__all__ = ["Model", "analyze", "build", "calibrate", "compare", "cost_rule", "count", "dwsc", "effective_receptive_field", "latency", "list_models", "memory",
           "predict", "receptive_field", "resolve", "roofline", "trace_layers", "training_memory", "UserError",
           "__version__"]

# public name -> (module, attribute): where each lives in the pipeline
_PUBLIC = {
    "build": ("archlab.models.resolve", "build"),
    "resolve": ("archlab.models.resolve", "resolve"),
    "list_models": ("archlab.models.catalog", "list_models"),
    "Model": ("archlab.api.model", "Model"),
    "count": ("archlab.api.count", "count"),
    "trace_layers": ("archlab.api.layers", "trace_layers"),
    "receptive_field": ("archlab.api.layers", "receptive_field"),
    "effective_receptive_field": ("archlab.api.layers", "effective_receptive_field"),
    "memory": ("archlab.api.memory", "memory"),
    "training_memory": ("archlab.api.memory", "training_memory"),
    "dwsc": ("archlab.analysis.laws", "dwsc"),
    "compare": ("archlab.api.compare", "compare_models"),
    "analyze": ("archlab.api.analyze", "analyze"),
    "cost_rule": ("archlab.analysis.costs", "cost_rule"),
    "latency": ("archlab.measure.latency", "latency"),
    "calibrate": ("archlab.measure.calibrate", "machine"),
    "predict": ("archlab.measure.predict", "predict"),
    "roofline": ("archlab.measure.roofline", "roofline"),
    "UserError": ("archlab.errors", "UserError"),
}


def __getattr__(name: str):
    try:
        module, attribute = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'archlab' has no attribute '{name}'") from None
    import importlib

    return getattr(importlib.import_module(module), attribute)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
