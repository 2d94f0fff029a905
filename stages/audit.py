"""Stage audit: know your data (the work: `fewclip.audit.audit`).

Reads the embed stage's features (and the photos, for their pixel fingerprints and the
galleries) and writes:
  <out>/suspect_labels.csv   path,label,suggested,score: every training photo, most suspect
                             first (score: log-odds by which the head, out of fold, prefers
                             `suggested`; above 0 it would call the photo that); then the
                             photos of classes too small to check, without a score
  <out>/duplicates.csv       path,duplicate_of,similarity,kind,where (kind: exact or near;
                             where: train, train-val, train-test (a leak) or test)
  <out>/outliers.csv         path,split,label,nearest_class,similarity,z: photos far from every class
  <out>/summary.json         folds, unchecked classes, the feature threshold used, what it said
  <metrics>                  the counts: suspects (score above 0), leaks, duplicates, outliers
  <suspects_jpg>, <leaks_jpg>  the galleries: the top suspects; the leaks, pairs side by side
"""

import csv
import json
import sys
from pathlib import Path

from fewclip.audit import audit
from fewclip.features import load_features, load_text
from fewclip.heads import fit_imports, make_head, one_thread
from fewclip.pipeline.heads_schema import declared_heads
from fewclip.pipeline.params import load_params
from fewclip.pipeline.runner import run, stage_paths
from fewclip.plots import contact_sheet


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    features, out, metrics_json, suspects_jpg, leaks_jpg = stage_paths("FEATURES OUT METRICS SUSPECTS_JPG LEAKS_JPG")
    p = load_params(heads=declared_heads())
    a = p["audit"]
    train, val = load_features(features / "train.npz"), load_features(features / "val.npz")
    test, novel = load_features(features / "test.npz"), load_features(features / "zero_shot.npz")
    text = load_text(features / "text.npz")
    rows = text.rows_for(train.classes, features / "text.npz")

    def head(settings):
        return make_head(a["head"], {**p["heads"][p["audit"]["head"]], **settings}, text_features=rows,
                         logit_scale=text.logit_scale, seed=p["seed"])

    with one_thread(fit_imports([a["head"]])):
        found = audit(train, val, test, novel, head, folds=a["folds"], seed=p["seed"], threshold=a["near_duplicate"],
                      pixel_threshold=a["pixel_duplicate"], outlier_z=a["outlier_z"])

    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "suspect_labels.csv", ["path", "label", "suggested", "score"], found.suspects)
    write_csv(out / "duplicates.csv", ["path", "duplicate_of", "similarity", "kind", "where"],
              [vars(d) for d in found.duplicates])
    write_csv(out / "outliers.csv", ["path", "split", "label", "nearest_class", "similarity", "z"], found.outliers)
    (out / "summary.json").write_text(json.dumps(
        {"head": a["head"], "folds": found.folds, "unchecked_classes": found.unchecked,
         "feature_threshold": found.feature_threshold, "metrics": found.metrics, "lines": found.lines,
         "warnings": found.warnings}, indent=2, ensure_ascii=False) + "\n")
    metrics_json.parent.mkdir(parents=True, exist_ok=True)
    metrics_json.write_text(json.dumps({"audit": found.metrics}, indent=1) + "\n")

    n = a["gallery"]
    top = [r for r in found.suspects if r["score"] != "" and r["score"] > 0][:n]
    contact_sheet([(r["path"], f"{Path(r['path']).name[:24]}\nlabel {r['label']}\nlooks {r['suggested']} "
                               f"{r['score']:+.1f}") for r in top], suspects_jpg,
                  f"{len(top)} most suspect labels of {found.metrics['suspects']} that the {a['head']} head, out of "
                  "fold, calls another class (label, the class it looks like, log-odds)" if top else
                  "No training photo looks like another class to the head out of fold.")
    leaks = [d for d in found.duplicates if d.where == "train-test"][: max(1, n // 2)]
    pairs = []
    for d in leaks:
        pairs += [(d.path, f"test {Path(d.path).name[:20]}\n{d.kind} copy of"),
                  (d.duplicate_of, f"train {Path(d.duplicate_of).name[:19]}\ncosine {d.similarity:.4f}")]
    contact_sheet(pairs, leaks_jpg, f"{len(leaks)} of {found.metrics['leaks']} test photos that duplicate a training "
                  "photo, each beside it" if leaks else "No test photo duplicates a training photo.")
    for line in found.warnings:
        print(f"warning: {line}", file=sys.stderr)
    for line in found.lines:
        print(f"audit: {line}")
    print(f"audit: -> {out}/, {metrics_json}, {suspects_jpg}, {leaks_jpg}")


if __name__ == "__main__":
    run(main)
