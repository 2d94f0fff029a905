"""Shared helpers for tests that run the stage scripts and DVC in a copy of the repository."""

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def env() -> dict:
    """The test's Python first on PATH (as `make test` does), a git identity, no DVC analytics."""
    e = dict(os.environ)
    e["PATH"] = str(Path(sys.executable).parent) + os.pathsep + e.get("PATH", "")
    e.update(GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
             GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com",
             DVC_NO_ANALYTICS="1")
    return e


def sh(*cmd, cwd, check=True, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env={**env(), **(extra_env or {})},
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_repo(dest: Path) -> Path:
    """The repository's files as git sees them (tracked and not ignored), in a fresh git repo."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for f in files:
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    sh("git", "init", "-q", cwd=dest)
    sh("git", "config", "user.name", "test", cwd=dest)
    sh("git", "config", "user.email", "test@example.com", cwd=dest)
    return dest


def set_params(repo: Path, **changes) -> dict:
    """Edit params.yaml; keys with dots reach into groups (`embed.num_workers`)."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        node, *parts = key.split(".")
        target = params
        for part in [node, *parts][:-1]:
            target = target[part]
        target[[node, *parts][-1]] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def truncated_jpeg(path: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def stage_args(stage: str) -> list[str]:
    """The paths dvc.yaml's command of `stage` passes to `stages/<stage>.py`."""
    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["cmd"].split()
    return cmd[cmd.index(f"stages/{stage}.py") + 1:]


def run_stage(project: Path, script: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    """`python stages/<script>.py args` (without `args`: those of dvc.yaml's command) run in
    this process, in `project`: its exit code and
    what it printed, as `sh` gives them (and, like `sh`, failing unless `check=False`). The stage's own code path (`__main__`, its `run`
    wrapper, its argv), without a new interpreter importing torch for every call; tests that
    must see the real command (`dvc repro`, `python stages/...`) use `sh`."""
    import contextlib
    import gc
    import runpy

    out, err, argv, code = io.StringIO(), io.StringIO(), sys.argv, 0
    path = project / "stages" / f"{script}.py"
    with contextlib.chdir(project), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        args = args or stage_args(script)
        sys.argv = [str(path), *map(str, args)]
        try:
            runpy.run_path(str(path), run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        finally:
            sys.argv = argv
            gc.unfreeze()  # `run` freezes what exists: let this process's collector reach it again
    if check and code != 0:
        raise AssertionError(f"stages/{script}.py {' '.join(map(str, args))} failed ({code}):\n"
                             f"{out.getvalue()}\n{err.getvalue()}")
    return subprocess.CompletedProcess(sys.argv, code, out.getvalue(), err.getvalue())
