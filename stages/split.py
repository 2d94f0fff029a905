"""Stage split: find the images, skip junk, check the folder layout, and write stratified
train/val/test file lists (the rules: `fewclip.splits.make_splits`), after the data check
(`fewclip.checks`: small classes, untested novel classes, exact duplicates and leaks), each
finding one warning line.

Writes <out>/{train,val,test,zero_shot}.csv (path,label) and <out>/summary.json (counts, the
data check's findings, every skipped file with its reason).
"""

import json
import sys

from fewclip.splits import make_splits, write_list
from fewclip.pipeline.params import load_params
from fewclip.pipeline.runner import run, stage_paths


def main() -> None:
    (out,) = stage_paths("OUT")
    p = load_params()
    splits = make_splits(p["data"]["train_dir"], p["data"]["test_dir"], p["data"]["zero_shot_dir"], p["classes"]["novel"],
                         p["split"]["val_fraction"], p["seed"], p["split"]["min_per_class"], info=print,
                         warn=lambda m: print(f"warning: {m}", file=sys.stderr))
    for name in ("train", "val", "test", "zero_shot"):
        write_list(out / f"{name}.csv", getattr(splits, name))
    summary = splits.summary()
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    n = summary["images"]
    flagged = {kind: c["count"] for kind, c in summary["checks"].items() if c["count"]}
    print(f"split: {n['train']} train, {n['val']} val, {n['test']} test, {n['zero_shot']} zero-shot test images"
          + (f"; data check: {', '.join(f'{k} {v}' for k, v in flagged.items())}" if flagged else "; data check: clean")
          + f" -> {out}/")


if __name__ == "__main__":
    run(main)
