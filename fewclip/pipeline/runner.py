"""Running a stage or a command: errors become one line and an exit code.

dvc.yaml runs each stage script through this module, `python -m fewclip.pipeline.runner
stages/<stage>.py PATHS...`, which pauses the garbage collector while the script imports
(imports make no garbage, and collecting during them costs a fifth of their time, about
0.8 s with torch); `run` then freezes what the imports made (out of every collection and the
one at exit) and collects again. A script run directly (`python stages/<stage>.py`) does the
same work, with the collector on throughout.

The library raises `fewclip.SettingError` with its own name for a setting (`decode`,
`device`, `sampler`); `run` names it as the caller knows it: the params key for a stage
(`PARAMS_KEYS`), the flag for a command (its own mapping).
"""

from __future__ import annotations

import gc
import runpy
import sys
from pathlib import Path
from typing import Callable

from .. import SettingError, UserError

# the library's setting names, as params.yaml keys
PARAMS_KEYS = {
    "device": "params.yaml: embed.device",
    "decode": "params.yaml: embed.decode",
    "precision": "params.yaml: embed.precision",
    "engine": "params.yaml: embed.engine",
    "num_workers": "params.yaml: embed.num_workers",
    "batch_size": "params.yaml: embed.batch_size",
    "templates": "params.yaml: embed.templates",
    "prompts": "params.yaml: classes.prompts",
    "val_fraction": "params.yaml: split.val_fraction",
    "train_dir": "params.yaml: data.train_dir",
    "test_dir": "params.yaml: data.test_dir",
    "novel": "params.yaml: classes.novel",
    "model": "params.yaml: model",
    "head": "params.yaml: head",
    "sampler": "params.yaml: heads.mlp.sampler",
}


def message(error: UserError, names: dict[str, str]) -> str:
    """The one line for `error`: a setting error under the caller's name for the setting."""
    if isinstance(error, SettingError) and error.setting in names:
        return error.named(names[error.setting])
    return str(error)


def stage_paths(usage: str) -> list[Path]:
    """The paths a stage's command names, in the order of `usage` ("FEATURES CLASSIFIER ...");
    dvc.yaml names every input and output on the command, so none has a default."""
    names, given = usage.split(), sys.argv[1:]
    if len(given) != len(names):
        raise UserError(f"usage: python {sys.argv[0]} {usage} (got {len(given)} of the {len(names)} paths)")
    return [Path(a) for a in given]


def run(main: Callable[[], int | None], names: dict[str, str] | None = None) -> None:
    """Run a stage's or command's `main`: a UserError ends it with `error: <one line>` and exit
    code 1 (a SettingError named by `names`, the params keys by default); a non-zero return
    value is the exit code. What the imports made is frozen first, and the collector (paused
    by `launch`) runs again."""
    gc.freeze()
    gc.enable()
    try:
        code = main()
    except UserError as e:
        print(f"error: {message(e, PARAMS_KEYS if names is None else names)}", file=sys.stderr)
        sys.exit(1)
    if code:
        sys.exit(code)


def launch(argv: list[str]) -> None:
    """Run the stage script `argv[0]` with the arguments after it, as `python argv...` would,
    the collector paused until its `run` (see the module docstring)."""
    if not argv or not argv[0].endswith(".py"):
        print("usage: python -m fewclip.pipeline.runner stages/<stage>.py PATHS...", file=sys.stderr)
        sys.exit(2)
    gc.disable()
    sys.argv = list(argv)
    try:
        runpy.run_path(argv[0], run_name="__main__")
    finally:
        gc.enable()


if __name__ == "__main__":
    launch(sys.argv[1:])
