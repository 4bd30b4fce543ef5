"""Every public function and method of the package documents its parameters and its return
value in numpydoc sections (``Parameters``, ``Returns``), read from the source with :mod:`ast`.

Private modules (``_io``, ``_validation``, ...) and private names are exempt; a property's
docstring is its value's description, so it needs no ``Returns``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import rrnn_convex

ROOT = Path(rrnn_convex.__file__).resolve().parent


def _returns_value(node: ast.FunctionDef) -> bool:
    """A ``return <value>`` in the function itself (not in a nested function)."""
    stack = list(node.body)
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Return) and n.value is not None:
            return True
        if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(n))
    return False


def _missing_sections(nodes, prefix: str):
    for node in nodes:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            yield from _missing_sections(node.body, f"{prefix}{node.name}.")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            doc = ast.get_docstring(node) or ""
            args = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                    if a.arg not in ("self", "cls")]
            prop = any(getattr(d, "id", getattr(d, "attr", "")) in ("property", "cached_property")
                       for d in node.decorator_list)
            need = [s for s, wanted in (("Parameters", bool(args)), ("Returns", _returns_value(node) and not prop))
                    if wanted and f"{s}\n" not in doc]
            if need:
                yield f"{prefix}{node.name} (line {node.lineno}): no {' or '.join(need)} section"


def _public_modules():
    for path in sorted(ROOT.rglob("*.py")):
        if path.name.startswith("_") and path.name != "__init__.py":
            continue
        yield path


def test_the_check_can_fail():
    src = 'def f(x):\n    """Doubles."""\n    return 2 * x\n\n\ndef g():\n    """Nothing."""\n'
    assert list(_missing_sections(ast.parse(src).body, "")) == ["f (line 1): no Parameters or Returns section"]


def test_public_functions_have_numpydoc_sections():
    missing = [f"{p.relative_to(ROOT.parent)}: {m}" for p in _public_modules()
               for m in _missing_sections(ast.parse(p.read_text()).body, "")]
    assert not missing, "public functions without numpydoc sections:\n" + "\n".join(missing)
