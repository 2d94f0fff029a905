"""The `params` stage (`python -m fewclip.pipeline.check params.yaml`): all of params.yaml against
the whole schema, with the heads' groups assembled from the registered heads, and the `model`
name against the backbone registry (its form; the file, or open_clip's architecture and tag).
It runs whenever params.yaml changes, before the stages, so that any fault stops an
experiment at once, also in keys no stage reads."""

from __future__ import annotations

import sys

from ..backbone import check_name
from ..heads import HEADS
from .params import load_params
from .runner import run


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "params.yaml"
    check_name(load_params(path, HEADS)["model"])
    print(f"params: {path} is valid")


if __name__ == "__main__":
    run(main)
