"""Obtain the reference data set into `data/` and check it against `data.dvc`.

    python -m fewclip.fetch                  # with internet: `dvc get` from the pinned source
    python -m fewclip.fetch --from DIR       # offline: copy a local copy of the data set
    python -m fewclip.fetch                  # data/ already filled: only check it

The source repository, folder and commit are read from the `meta` block of `data.dvc`; the
check compares the folder's DVC hash with the one pinned there, and on success puts the data
into the DVC cache so that `dvc exp run` and `dvc checkout` can restore it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from . import UserError
from .pipeline.runner import run


def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise UserError(f"`dvc {' '.join(args)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def read_pin(dvc_file: Path) -> dict:
    spec = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))
    out = spec["outs"][0]
    return {"path": out["path"], "md5": out["md5"], "nfiles": out.get("nfiles"), **spec.get("meta", {})}


def obtain(pin: dict, target: Path, local: Path | None) -> None:
    if local is not None:
        if not local.is_dir():
            raise UserError(f"{local}: folder not found (--from must name a copy of the data set)")
        print(f"fetch: copying {local} -> {target}/")
        shutil.copytree(local, target, dirs_exist_ok=True)
        return
    print(f"fetch: dvc get {pin['source']} {pin['source_path']} --rev {pin['rev']} -o {target}")
    if target.exists():
        target.rmdir()  # empty; dvc get refuses an existing folder
    proc = dvc("get", pin["source"], pin["source_path"], "--rev", pin["rev"], "-o", str(target), check=False)
    if proc.returncode != 0:
        reason = (proc.stderr or proc.stdout).strip().splitlines()[-1][:300]
        raise UserError(f"could not download the data set ({reason}); "
                        "offline, copy it from a local folder: python -m fewclip.fetch --from DIR")


def verify(pin: dict, dvc_file: Path) -> None:
    status = json.loads(dvc("data", "status", "--json", "--unchanged", "--granular").stdout or "{}")
    if f"{pin['path']}/" in status.get("unchanged", []):
        dvc("commit", "--force", "--quiet", str(dvc_file))  # fill the DVC cache; the hash is unchanged
        print(f"fetch: {pin['path']}/ matches {dvc_file} ({pin['nfiles']} files, {pin['md5']})")
        return
    changes = status.get("uncommitted", {})
    differing = [f"{kind}: {p}" for kind in ("modified", "added", "deleted") for p in changes.get(kind, [])
                 if p.rstrip("/") != pin["path"]]
    raise UserError(f"{pin['path']}/ does not match {dvc_file} (pinned {pin['md5']}, {pin['nfiles']} files); "
                    f"differences: {', '.join(differing[:5]) or 'unknown'}"
                    + (f" and {len(differing) - 5} more" if len(differing) > 5 else "")
                    + f". Empty {pin['path']}/ and fetch again.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="local", type=Path, help="a local copy of the data set to copy from")
    parser.add_argument("--dvc-file", type=Path, default=Path("data.dvc"))
    args = parser.parse_args(argv)
    if not args.dvc_file.is_file():
        raise UserError(f"{args.dvc_file}: not found (run from the repository root)")
    pin = read_pin(args.dvc_file)
    target = Path(pin["path"])
    if target.is_dir() and any(target.iterdir()):
        print(f"fetch: {target}/ is not empty; checking it")
    else:
        obtain(pin, target, args.local)
    verify(pin, args.dvc_file)


if __name__ == "__main__":
    run(main)
