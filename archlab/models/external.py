"""Models from outside the zoo, named wherever a model spec is accepted:

* ``torchvision:resnet50`` and ``timm:efficientnet_b0`` (when those packages are installed),
  built without pretrained weights;
* ``path/to/file.py:factory`` or ``package.module:callable``: any callable returning an
  ``nn.Module``. Loading a user's file runs its code, as importing it would.

The input size comes from ``--input-size`` or, when it is not given, from the factory's or
the model's ``input_size`` attribute (C, H, W), from timm's ``default_cfg``, or 3x224x224
for torchvision (299x299 for its Inception v3).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
from typing import Any, Callable

from archlab.errors import UserError, first_line, shorten
from archlab.models._registry import ModelInfo
from archlab.spec import REQUIRED
from archlab.user_code import user_code


def is_external(name: str) -> bool:
    return ":" in name


# torchvision's model families, by the module whose builders list_models(module=...) lists, and
# the default input (one sample's) of each: video clips are C,T,H,W; RAFT takes two frames.
_TV_FAMILIES = (("", (3, 224, 224)), ("segmentation", (3, 520, 520)), ("video", (3, 16, 112, 112)),
                ("optical_flow", [(3, 224, 224), (3, 224, 224)]), ("quantization", (3, 224, 224)),
                ("detection", (3, 800, 800)))
# video models trained at 224 x 224 (the rest of torchvision's video models take 112 x 112 clips)
_TV_VIDEO_224 = ("mvit", "swin3d", "s3d")


def _torchvision_names(tvm: Any) -> dict[str, tuple[str, Any]]:
    """Every torchvision builder's name -> (its family, its default input)."""
    names: dict[str, tuple[str, Any]] = {}
    for family, size in _TV_FAMILIES:
        module = getattr(tvm, family, None) if family else tvm
        if module is None:
            continue
        for n in tvm.list_models(module=module):
            if family == "video" and n.startswith(_TV_VIDEO_224):
                size = (3, 16, 224, 224)
            elif family == "video":
                size = (3, 16, 112, 112)
            names.setdefault(n, (family or "classification", size))
    return names


def _torchvision(name: str) -> tuple[Callable[..., Any], Any]:
    try:
        import torchvision.models as tvm
    except ImportError:
        raise UserError("'torchvision:' models need torchvision: pip install torchvision (a build matching torch)") from None
    except Exception as e:  # a torchvision built for another torch fails at import
        raise UserError(f"torchvision is installed but cannot be imported here: {first_line(e)}") from None
    names = _torchvision_names(tvm)
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, list(names), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"torchvision has no model '{shorten(name)}'{hint}")
    family, size = names[name]

    def build(**options):
        if family in ("segmentation", "detection"):
            options.setdefault("weights_backbone", None)  # never download a backbone's weights
        return tvm.get_model(name, weights=None, **options)

    if name.startswith("inception") or name.startswith("quantized_inception"):
        size = (3, 299, 299)

    def input_size(**options: Any) -> Any:
        side = options.get("image_size")  # vit_h_14@image_size=518: the model's own geometry
        if isinstance(side, int) and isinstance(size, tuple) and len(size) == 3:
            return (size[0], side, side)
        return size

    return build, input_size


def _timm(name: str) -> tuple[Callable[..., Any], tuple[int, int, int] | None]:
    try:
        import timm
    except ImportError:
        raise UserError("'timm:' models need timm: pip install timm") from None
    if not timm.is_model(name):
        close = timm.list_models(f"*{name[:6]}*")[:3]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"timm has no model '{shorten(name)}'{hint}")

    def build(**options):
        return timm.create_model(name, pretrained=False, **options)

    cfg = timm.get_pretrained_cfg(name)
    size = tuple(cfg.input_size) if cfg is not None and getattr(cfg, "input_size", None) else None
    return build, size


USER_MODULE_PREFIX = "archlab_user_"  # the module name of a user's file: the prefix, then the file's stem


def load_source(mod_name: str, path: str) -> Any:
    """Run the Python file ``path`` as the module ``mod_name`` (in ``sys.modules`` while it runs and after; the
    caller removes it if the file raises). Read as Python source whatever the file is called (model.PY,
    notes.txt, an extensionless script): ``spec_from_file_location`` alone picks a loader by suffix and finds
    none for those."""
    loader = importlib.machinery.SourceFileLoader(mod_name, path)
    spec = importlib.util.spec_from_file_location(mod_name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


def _user_callable(target: str) -> Callable[..., Any]:
    module_part, _, attr = target.rpartition(":")
    if not module_part or not attr:
        raise UserError(f"'{shorten(target)}' is not of the form path/to/file.py:factory or package.module:callable")
    shown = shorten(module_part)
    if _is_file_path(module_part):
        path = os.path.abspath(module_part)
        if not os.path.isfile(path):
            raise UserError(f"no such file: '{shown}'")
        stem = os.path.basename(path).partition(".")[0] or "model"
        mod_name = USER_MODULE_PREFIX + "".join(c if c.isalnum() else "_" for c in stem)
        try:
            with user_code(f"'{shown}' to load"):
                module = load_source(mod_name, path)
        except (Exception, SystemExit) as e:  # the user's code: report it in one line (sys.exit too)
            sys.modules.pop(mod_name, None)
            raise UserError(f"loading '{shown}' failed: {type(e).__name__}: {_first(e)}") from None
    else:
        try:
            with user_code(f"'{shown}' to import"):
                module = importlib.import_module(module_part)
        except ImportError as e:
            raise UserError(f"cannot import '{shown}': {shorten(_first(e), 200)}") from None
        except (Exception, SystemExit) as e:
            raise UserError(f"importing '{shown}' failed: {type(e).__name__}: {_first(e)}") from None
    fn = getattr(module, attr, None)
    if fn is None:
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise UserError(f"'{shown}' has no '{shorten(attr)}' (its callables: {', '.join(public[:8]) or 'none'})")
    if not callable(fn):
        raise UserError(f"'{shorten(target)}' is not callable")
    return fn


def _is_file_path(text: str) -> bool:
    """``text`` (before the ``:factory``) names a file rather than a module: it ends in .py (any
    case), has a path separator, or is an existing file (``notes.txt``, an extensionless script)."""
    return (text.lower().endswith(".py") or os.sep in text or "/" in text
            or (os.path.isfile(text) and not os.path.isdir(text)))


def looks_like_a_file(name: str) -> bool:
    """A model name without ``:factory`` that names a Python file (``mycnn.py``, or an existing file)."""
    return name.lower().endswith(".py") or os.path.isfile(name)


def file_hint(name: str) -> str:
    """What to say for ``archlab count mycnn.py`` (a file named without its factory): name the
    factory, and the candidates. The file is read with ``ast``, not run: its top-level functions and
    its classes that derive from a ``...Module`` class (``nn.Module``, ``torch.nn.Module``, ``Module``)."""
    import ast

    shown = shorten(name)
    try:
        with open(name, "rb") as f:
            tree = ast.parse(f.read(), name)
    except FileNotFoundError:
        return f"no such file: '{shown}' (a model file is named with its factory: path/to/file.py:factory)"
    except (OSError, SyntaxError, ValueError) as e:
        return f"'{shown}' is a file: name its factory, as in '{shown}:factory' (the file cannot be read " \
               f"as Python: {type(e).__name__})"

    def is_module_class(node: ast.ClassDef) -> bool:
        for base in node.bases:
            text = ast.unparse(base)
            if text.rpartition(".")[2].endswith("Module") or text.rpartition(".")[2] in ("Sequential", "ModuleList"):
                return True
        return False

    found = [node.name for node in tree.body
             if (isinstance(node, ast.FunctionDef) or (isinstance(node, ast.ClassDef) and is_module_class(node)))
             and not node.name.startswith("_")]
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in found]
    example = (functions or found or ["factory"])[0]
    listed = (f"; its top-level functions and nn.Module classes: {', '.join(found[:8])}"
              + (f" and {len(found) - 8} more" if len(found) > 8 else "")) if found else \
        "; it defines no top-level function or nn.Module class"
    return f"'{shown}' is a file: name the callable that builds the model, as in '{shown}:{example}'{listed}"


def _first(e: BaseException) -> str:
    if isinstance(e, SystemExit):
        return f"the code called sys.exit({e.code!r})"
    return first_line(e)


def _options_of(fn: Callable[..., Any]) -> dict[str, Any] | None:
    """The callable's keyword-passable parameters and their defaults (``REQUIRED`` for those
    without one), or None when it takes ``**kwargs`` and any option must be passed through."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {p.name: REQUIRED if p.default is p.empty else p.default for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def external_info(name: str) -> ModelInfo:
    """A ModelInfo for an external spec (its builder checks that it returns an nn.Module)."""
    prefix, _, rest = name.partition(":")
    if prefix == "torchvision":
        fn, size = _torchvision(rest)
        family, paper = "torchvision", f"torchvision.models.{rest}"
    elif prefix == "timm":
        fn, size = _timm(rest)
        family, paper = "timm", f"timm.create_model('{rest}')"
    else:
        fn = _user_callable(name)
        size = _declared_inputs(fn, name)
        family, paper = "user", name
        import torch

        if isinstance(fn, torch.nn.Module):  # 'file.py:model' naming a module instance: the model itself
            instance = fn

            def fn():
                return instance

            fn.input_size = size

    def builder(**options):
        import torch

        try:
            with user_code(f"'{shorten(name)}' to build"):
                model = fn(**options)
        except UserError:
            raise
        except (Exception, SystemExit) as e:
            raise UserError(f"building '{shorten(name)}' failed: {type(e).__name__}: {_first(e)}") from None
        if not isinstance(model, torch.nn.Module):
            raise UserError(f"'{shorten(name)}' returned a {type(model).__name__}, not an nn.Module")
        return model

    if size is None and prefix not in ("torchvision", "timm"):
        def from_the_model(**options: Any) -> Any:
            """The returned model's own ``input_size`` / ``example_inputs``, read from a meta build."""
            import torch

            with torch.device("meta"):
                model = builder(**options)
            found = _declared_inputs(model, name)
            if found is None:
                raise UserError(f"'{shorten(name)}' has no default input size: give --input-size C,H,W (any "
                                f"rank, int64:128 for token ids), or give the factory or the model an "
                                f"input_size or example_inputs attribute")
            return found

        from_the_model.builds_the_model = True  # type: ignore[attr-defined]
        return ModelInfo(name, family, paper, builder, from_the_model, None, note="external",
                         open_options=_options_of(fn))
    return ModelInfo(name, family, paper, builder,
                     size if callable(size) or isinstance(size, list) or hasattr(size, "dtype")
                     else tuple(size) if size else None,
                     None, note="external", open_options=_options_of(fn))


def _declared_inputs(obj: Any, name: str) -> Any:
    """The inputs a factory or a model declares: an ``input_size`` attribute (``(3, 224, 224)``, or
    a string as ``--input-size`` takes it, ``"input_ids=int64:128"``), or ``example_inputs`` (a
    tuple or dict of tensors, or a function returning one, as ``torch.export`` users write them:
    the first dimension of each tensor is the batch, which ``--batch`` sets). None when neither."""
    from archlab.spec import parse_input_size

    size = getattr(obj, "input_size", None)
    if isinstance(size, str):
        return parse_input_size(size)
    if size is not None:
        return size
    examples = getattr(obj, "example_inputs", None)
    if examples is None:
        return None
    if callable(examples):
        try:
            with user_code(f"'{shorten(name)}' example_inputs"):
                examples = examples()
        except UserError:
            raise
        except (Exception, SystemExit) as e:
            raise UserError(f"example_inputs of '{shorten(name)}' failed: {type(e).__name__}: {_first(e)}") from None
    return _inputs_of_examples(examples, name)


def _inputs_of_examples(examples: Any, name: str) -> list[Any]:
    import torch

    from archlab.spec import ForwardOption, InputShape

    if isinstance(examples, torch.Tensor):
        examples = (examples,)
    if isinstance(examples, tuple) and len(examples) == 2 and isinstance(examples[1], dict) \
            and isinstance(examples[0], tuple):  # (args, kwargs), as torch.export.export takes them
        items = [*((None, a) for a in examples[0]), *examples[1].items()]
    elif isinstance(examples, (tuple, list)):
        items = [(None, a) for a in examples]
    elif isinstance(examples, dict):
        items = list(examples.items())
    else:
        raise UserError(f"example_inputs of '{shorten(name)}' is a {type(examples).__name__}: give a tuple or "
                        f"dict of tensors")
    out: list[Any] = []
    for key, value in items:
        if isinstance(value, torch.Tensor):
            if value.dim() < 1:
                raise UserError(f"example_inputs of '{shorten(name)}': a tensor needs a batch dimension first")
            dtype = None if value.is_floating_point() else str(value.dtype).removeprefix("torch.")
            out.append(InputShape(tuple(value.shape[1:]), dtype, key))
        elif key is not None and (value is None or isinstance(value, (bool, int, float, str))):
            out.append(ForwardOption(key, value))
        else:
            raise UserError(f"example_inputs of '{shorten(name)}': {key or 'an argument'} is a "
                            f"{type(value).__name__}, not a tensor")
    if not any(isinstance(o, InputShape) for o in out):
        raise UserError(f"example_inputs of '{shorten(name)}' has no tensor")
    return out
