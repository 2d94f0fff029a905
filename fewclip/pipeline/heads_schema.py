"""The registered heads' settings, read from their source without importing them.

A head declares its settings once, in its `__init__` signature (`fewclip.heads.base`). The
params check needs them before any work, and importing the heads would import torch (about
2 s, in every `params` stage). So this module reads the same declaration from the source:
the modules the registry imports (`from . import ...` lines of `fewclip/heads/__init__.py`,
in order), each `@register`ed class's `name` and its `__init__` parameters, whose kinds
(`fewclip.kinds`) and defaults are evaluated there. `Head.settings()` gives the same at run
time; a test compares the two.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from .. import kinds

HEADS_DIR = Path(__file__).resolve().parents[1] / "heads"


def registered_modules(heads_dir: Path = HEADS_DIR) -> list[str]:
    """The head modules `fewclip/heads/__init__.py` imports to register them, in order."""
    tree = ast.parse((heads_dir / "__init__.py").read_text(encoding="utf-8"))
    return [a.name for node in tree.body if isinstance(node, ast.ImportFrom) and node.level == 1 and not node.module
            for a in node.names]


def _kind(node: ast.expr | None) -> Any:
    return Any if node is None else eval(ast.unparse(node), vars(kinds).copy())  # names of fewclip.kinds


def _registered(tree: ast.Module) -> list[ast.ClassDef]:
    return [c for c in tree.body if isinstance(c, ast.ClassDef)
            and any(isinstance(d, ast.Name) and d.id == "register" for d in c.decorator_list)]


def _head_name(cls: ast.ClassDef) -> str:
    for node in cls.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["name"]:
            return ast.literal_eval(node.value)
    raise ValueError(f"registered head class {cls.name} has no `name`")


def _init(cls: ast.ClassDef, classes: dict[str, ast.ClassDef]) -> ast.FunctionDef:
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            return node
    for base in cls.bases:  # inherited from a class of the same module
        if isinstance(base, ast.Name) and base.id in classes:
            return _init(classes[base.id], classes)
    raise ValueError(f"registered head class {cls.name} declares no __init__")


def declared_heads(heads_dir: Path = HEADS_DIR) -> dict[str, dict[str, tuple[Any, Any]]]:
    """{head name: {setting: (kind, default)}}, in the registry's order."""
    out: dict = {}
    for module in registered_modules(heads_dir):
        tree = ast.parse((heads_dir / f"{module}.py").read_text(encoding="utf-8"))
        classes = {c.name: c for c in tree.body if isinstance(c, ast.ClassDef)}
        for cls in _registered(tree):
            args = _init(cls, classes).args
            params = [a for a in args.args if a.arg != "self"]
            defaults = [None] * (len(params) - len(args.defaults)) + list(args.defaults)
            out[_head_name(cls)] = {a.arg: (_kind(a.annotation), None if d is None else ast.literal_eval(d))
                                    for a, d in zip(params, defaults) if a.arg not in kinds.SUPPLIED}
    return out
