"""The `params` stage (`python -m fewclip.pipeline.check params.yaml`): all of params.yaml against
the whole schema, with the heads' groups assembled from the registered heads' declarations
(read from their source: `heads_schema`), and an open_clip `model` name against open_clip's
architectures and tags. It runs whenever params.yaml changes, before the stages, so that any
fault stops an experiment at once, also in keys no stage reads. It imports no torch unless the
model is open_clip's: a check takes a fraction of a second. (An OpenAI model name the `clip`
package does not know, or a missing checkpoint file, is found by the embed stage, which
imports `clip` anyway.)"""

from __future__ import annotations

import sys

from .heads_schema import declared_heads
from .params import load_params
from .runner import run


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "params.yaml"
    model = load_params(path, declared_heads())["model"]
    if model.startswith("open_clip:"):
        from ..backbone import check_name

        check_name(model)
    print(f"params: {path} is valid")


if __name__ == "__main__":
    run(main)
