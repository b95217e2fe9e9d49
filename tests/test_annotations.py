"""Every public function and method in the modules under archlab/ (a name without a leading
underscore, at module level or in a public class) has annotations on all its
parameters (self/cls aside) and on its return. Checked on the source with ``ast``: nothing is
imported."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "archlab"


def _public_functions(tree: ast.Module):
    """(qualified name, node) of the module's public functions and its public classes' methods."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node, False
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                    yield f"{node.name}.{item.name}", item, True


def _missing(node: ast.FunctionDef, method: bool) -> list:
    args = node.args
    positional = args.posonlyargs + args.args
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
    if method and not static and positional:
        positional = positional[1:]  # self / cls
    params = positional + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a is not None]
    missing = [a.arg for a in params if a.annotation is None]
    if node.returns is None:
        missing.append("return")
    return missing


def unannotated() -> list:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name, node, method in _public_functions(tree):
            missing = _missing(node, method)
            if missing:
                out.append(f"{rel}:{node.lineno} {name}: {', '.join(missing)}")
    return out


def test_every_public_function_is_annotated():
    missing = unannotated()
    assert not missing, f"{len(missing)} public functions lack annotations:\n" + "\n".join(missing)
