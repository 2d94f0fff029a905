"""Stage split: find the images, skip junk, and write stratified train/val/test file lists.

Writes <out>/{train,val,test,zero_shot}.csv (path,label) and <out>/summary.json.
"""

import json
import sys
from pathlib import Path

from fewclip import UserError
from fewclip.data import scan_folder, stratified_split, write_list
from fewclip.params import load_params, run


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "splits")
    p = load_params()
    train = scan_folder(p["data"]["train_dir"])
    test = scan_folder(p["data"]["test_dir"])
    zero = scan_folder(p["data"]["zero_shot_dir"]) if p["data"]["zero_shot_dir"] else None
    for folder in (train, test, zero):
        if folder:
            print(folder.summary())

    counts = train.counts()
    if not train.classes:
        raise UserError(f"{train.root}: no class folders found")
    empty = [c for c in train.classes if counts[c] == 0]
    if empty:
        raise UserError(f"{train.root}: class folder(s) {empty} hold no usable image; "
                        "these classes cannot be trained (add images or remove the folders)")
    unknown = sorted(set(test.classes) - set(train.classes))
    if unknown:
        raise UserError(f"{test.root}: test class(es) {unknown} have no training folder in "
                        f"{train.root}; every test class must be trained")
    for c in test.classes:
        if test.counts()[c] == 0:
            print(f"warning: {test.root / c}: no usable test image; class {c!r} is not evaluated",
                  file=sys.stderr)
    novel = list(p["classes"]["novel"])
    trained_novel = sorted(set(novel) & set(train.classes))
    if trained_novel:
        raise UserError(f"params.yaml: classes.novel {trained_novel} have training folders in {train.root}; "
                        "a novel class is known by name only")
    if zero:
        stray = sorted(set(zero.classes) - set(novel))
        if stray:
            raise UserError(f"{zero.root}: test class(es) {stray} are neither trained (no folder in "
                            f"{train.root}) nor novel (params.yaml classes.novel: {novel}); "
                            "add them to classes.novel or remove the folders")

    tr, va = stratified_split(train.samples, p["split"]["val_fraction"], p["seed"])
    write_list(out / "train.csv", tr)
    write_list(out / "val.csv", va)
    write_list(out / "test.csv", test.samples)
    write_list(out / "zero_shot.csv", zero.samples if zero else [])
    summary = {
        "classes": train.classes,
        "novel_classes": novel,
        "images": {"train": len(tr), "val": len(va), "test": len(test.samples),
                   "zero_shot": len(zero.samples) if zero else 0},
        "skipped": {str(f.root): {"count": len(f.skipped),
                                  "files": [[s.path, s.reason] for s in f.skipped]}
                    for f in (train, test, zero) if f},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(f"split: {len(tr)} train, {len(va)} val, {len(test.samples)} test, "
          f"{summary['images']['zero_shot']} zero-shot test images -> {out}/")


if __name__ == "__main__":
    run(main)
