"""Reading `params.yaml` and running stage scripts with one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import yaml

from . import UserError


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: parameter file not found (run from the repository root)")
    with open(path, encoding="utf-8") as f:
        params = yaml.safe_load(f)
    if not isinstance(params, dict):
        raise UserError(f"{path}: expected a mapping of parameters, got {type(params).__name__}")
    return params


def choice(params: dict, key: str, allowed: tuple[str, ...]) -> str:
    """`params[key]`, checked to be one of `allowed`."""
    value = params.get(key)
    if value not in allowed:
        raise UserError(f"params.yaml: {key}={value!r} is not one of {', '.join(allowed)}")
    return value


def run(main: Callable[[], None]) -> None:
    """Run a stage's `main`; a UserError ends it with `error: ...` and exit code 1."""
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
