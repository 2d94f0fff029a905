"""Stage evaluate: the experiment's headline figures, the confusion matrices and the report
(the work: `fewclip.evaluation.evaluate`).

Writes, under <live_dir>:
  metrics.json   the DVC metrics: test accuracy and balanced accuracy over the trained
                 classes, test accuracy without the test photos that duplicate a training
                 photo (<duplicates_csv>, the audit's: `where` train-test), validation
                 accuracy (the same name in every mode), when novel classes have test images the generalised zero-shot seen / novel / harmonic,
                 and the shots stage's curve (<curve>) for this experiment's classifier:
                 its test accuracy at each shot count and zero-shot's
  report.json    the details: per-class accuracy, image counts, the GZSL accuracy and seen_bias
  plots/{confusion,gzsl_confusion}.json   the interactive confusion matrices (rows: true class)
and the pictures <confusion_png> and <gzsl_confusion_png>, and the galleries of mistakes:
<mistakes_jpg> (the most confident wrong predictions on the test photos) and
<gzsl_mistakes_jpg> (those involving a novel class).
"""

import csv
import json
import sys
from pathlib import Path

import numpy as np
from dvclive import Live

from fewclip import UserError
from fewclip.evaluation import evaluate
from fewclip.features import load_features
from fewclip.openvocab import load_classifier
from fewclip.pipeline.runner import run, stage_paths
from fewclip.plots import confusion_matrix_png, confusion_records, contact_sheet, message_png


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    features, model_path, curve_path, dups, live_dir, png, gzsl_png, gallery, gzsl_gallery = stage_paths(
        "FEATURES CLASSIFIER CURVE DUPLICATES_CSV LIVE_DIR CONFUSION_PNG GZSL_CONFUSION_PNG MISTAKES_JPG "
        "GZSL_MISTAKES_JPG")
    clf, saved = load_classifier(model_path)
    if not curve_path.is_file():
        raise UserError(f"{curve_path}: the shots curve is missing (run `dvc repro shots`)")
    if not dups.is_file():
        raise UserError(f"{dups}: the audit's duplicates are missing (run `dvc repro audit`)")
    with open(dups, newline="", encoding="utf-8") as f:
        leaked = {row["path"] for row in csv.DictReader(f) if row["where"] == "train-test"}
    ev = evaluate(clf, saved, load_features(features / "test.npz"), load_features(features / "val.npz"),
                  load_features(features / "zero_shot.npz"), json.loads(curve_path.read_text(encoding="utf-8")),
                  leaked=leaked)
    for line in ev.warnings:
        print(f"evaluate: {line}", file=sys.stderr)

    # dvclive clears its folder when it starts: the other files are written after it.
    with Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False) as live:
        for name, value in ev.metrics.items():
            live.log_metric(name, value, plot=False)
        for k in ev.curve_all:
            live.summary.setdefault("curve", {})[k] = "all"
    (live_dir / "report.json").write_text(json.dumps(ev.report, indent=2, ensure_ascii=False) + "\n")
    counts, confusion, classes = ev.confusion
    write_json(live_dir / "plots" / "confusion.json", confusion_records(counts, classes))
    shown = contact_sheet(list(ev.gallery[0]), gallery, ev.gallery[1])
    print(f"evaluate: {shown} mistakes shown in {gallery}")
    confusion_matrix_png(confusion, classes, png, ev.title)
    if ev.gzsl_confusion is not None:
        g_counts, g_confusion, g_classes = ev.gzsl_confusion
        write_json(live_dir / "plots" / "gzsl_confusion.json", confusion_records(g_counts, g_classes))
        contact_sheet(list(ev.gzsl_gallery[0]), gzsl_gallery, ev.gzsl_gallery[1])
        confusion_matrix_png(g_confusion, g_classes, gzsl_png, ev.gzsl_title)
    else:  # the declared outputs still exist, saying why they are empty
        nothing = "No novel class with test images: no generalised zero-shot evaluation."
        write_json(live_dir / "plots" / "gzsl_confusion.json", confusion_records(np.zeros((0, 0)), []))
        message_png(gzsl_png, nothing)
        contact_sheet([], gzsl_gallery, nothing)
    for line in ev.lines:
        print(f"evaluate: {line}")
    m = ev.metrics
    print(f"evaluate: {ev.title}, balanced {m['test/balanced_acc']:.1%} on {ev.report['test']['n_images']} "
          f"images -> {live_dir}/, {png}")


if __name__ == "__main__":
    run(main)
