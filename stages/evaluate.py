"""Stage evaluate: the experiment's headline figures, the confusion matrices and the report.

Writes, under <live_dir>:
  metrics.json   the DVC metrics: test accuracy and balanced accuracy over the trained
                 classes, validation accuracy (the same name in every mode), when novel
                 classes have test images the generalised zero-shot seen / novel / harmonic,
                 and the shots stage's curve (<curve>) for this experiment's classifier:
                 its test accuracy at each shot count and zero-shot's
  report.json    the details: per-class accuracy, image counts, the GZSL accuracy and seen_bias
  plots/{confusion,gzsl_confusion}.json   the interactive confusion matrices (rows: true class)
and the pictures <png> and gzsl_<png>, and beside them the galleries of mistakes:
mistakes.jpg (the most confident wrong predictions on the test photos) and gzsl_mistakes.jpg
(those involving a novel class). The generalised figures predict every test image (the
trained classes' and the novel classes') over every class.
"""

import json
import sys
from pathlib import Path

import numpy as np
from dvclive import Live

from fewclip import UserError
from fewclip.features import load_features
from fewclip.metrics import classification_metrics, gzsl_metrics
from fewclip.openvocab import load_classifier
from fewclip.pipeline.runner import run, stage_paths
from fewclip.plots import (confusion_matrix_png, confusion_records, contact_sheet, gallery_count, message_png,
                           mistakes, model_label)
from fewclip.shots import curve_metrics


GALLERY = 30  # photos per gallery of mistakes: a JPEG of about 100-300 KB


def write_confusion(path: Path, counts: np.ndarray, classes: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(confusion_records(counts, classes), indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    features, model_path, curve_path, live_dir, png, gzsl_png, gallery, gzsl_gallery = stage_paths(
        "FEATURES CLASSIFIER CURVE LIVE_DIR CONFUSION_PNG GZSL_CONFUSION_PNG MISTAKES_JPG GZSL_MISTAKES_JPG")
    clf, saved = load_classifier(model_path)
    test, val = load_features(features / "test.npz"), load_features(features / "val.npz")
    novel = load_features(features / "zero_shot.npz")
    if test.classes != saved["classes"] or test.model_sha256 != saved["model_sha256"]:
        raise UserError(f"{features}/test.npz and {model_path} come from different classes or "
                        "backbones; rerun `dvc repro`")
    test_proba = clf.head.predict_proba(test.features)
    m = classification_metrics(test.labels, test_proba, test.classes)
    kept = clf.head.kept_zero_shot()  # also in zero mode, whose head is zero-shot CLIP
    report = {"classifier": {"mode": saved["mode"], "head": saved["head"]["name"], "chosen": clf.head.chosen(),
                             "kept_zero_shot": kept, "uses_training_photos": not kept},
              "test": {"n_images": m["n"], "per_class": m["per_class"]}}

    g = None
    if len(novel.labels) and clf.novel:
        if novel.classes != clf.novel:
            raise UserError(f"{features}/zero_shot.npz and {model_path} disagree on the novel classes; "
                            "rerun `dvc repro`")
        X = np.concatenate([test.features, novel.features])
        y = np.concatenate([test.labels, novel.labels + clf.n_trained])
        g_proba = clf.predict_proba(X)
        g = gzsl_metrics(y, g_proba, clf.classes, clf.n_trained)
        report["gzsl"] = {"n_images": g["n"], "acc": g["acc"], "seen_bias": clf.seen_bias,
                          "per_class": g["per_class"]}

    head_name = saved["head"]["name"]  # "zero-shot" in zero mode
    if not curve_path.is_file():
        raise UserError(f"{curve_path}: the shots curve is missing (run `dvc repro shots`)")
    curve = curve_metrics(json.loads(curve_path.read_text(encoding="utf-8")), head_name)
    if not curve:
        print(f"evaluate: head {head_name} is not in the shots curve (params.yaml shots.heads): "
              "no curve figures", file=sys.stderr)

    # dvclive clears its folder when it starts: the other files are written after it.
    with Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False) as live:
        live.log_metric("test/acc", m["acc"], plot=False)
        live.log_metric("test/balanced_acc", m["balanced_acc"], plot=False)
        if len(val.labels):
            val_acc = float((clf.head.predict_proba(val.features).argmax(1) == val.labels).mean())
            live.log_metric("val/acc", val_acc, plot=False)
        if g is not None:
            for k in ("seen", "novel", "harmonic"):
                live.log_metric(f"gzsl/{k}", g[k], plot=False)
        for k, acc in curve.items():
            if acc == "all":  # a shot count more than any class has: the whole training split
                live.summary.setdefault("curve", {})[k] = "all"
            else:
                live.log_metric(f"curve/{k}", acc, plot=False)
    (live_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_confusion(live_dir / "plots" / "confusion.json", m["counts"], test.classes)
    if g is not None:
        write_confusion(live_dir / "plots" / "gzsl_confusion.json", g["counts"], clf.classes)

    how = ("zero-shot" if saved["mode"] == "zero" else
           f"few-shot {head_name} head, which kept zero-shot CLIP" if kept else f"few-shot {head_name} head")
    wrong = int((test_proba.argmax(1) != test.labels).sum())
    shown = contact_sheet(mistakes(test.labels, test_proba, test.classes, test.paths, GALLERY), gallery,
                          f"{how}: {gallery_count(wrong, GALLERY)} on {m['n']} test images, most confident "
                          "first (true class, predicted class, its probability)")
    print(f"evaluate: {shown} mistakes shown in {gallery}")
    title = f"{model_label(saved['model'])}, {how}: test accuracy {m['acc']:.1%}"
    confusion_matrix_png(m["confusion"], test.classes, png, title)
    if g is not None:
        involves_novel = lambda t, p: t >= clf.n_trained or p >= clf.n_trained  # noqa: E731
        novel_mistakes = mistakes(y, g_proba, clf.classes, test.paths + novel.paths, GALLERY, only=involves_novel)
        contact_sheet(novel_mistakes, gzsl_gallery,
                      f"Generalised zero-shot: the most confident mistakes involving a novel class "
                      f"({', '.join(clf.novel)}), as true or as predicted class")
        confusion_matrix_png(g["confusion"], clf.classes, gzsl_png,
                             f"{model_label(saved['model'])}, {how} + zero-shot novel classes: "
                             f"seen {g['seen']:.1%}, novel {g['novel']:.1%}, H {g['harmonic']:.1%}")
        print(f"evaluate: generalised zero-shot over {len(clf.classes)} classes: seen {g['seen']:.1%}, "
              f"novel {g['novel']:.1%}, harmonic mean {g['harmonic']:.1%} on {g['n']} images -> {gzsl_png}")
    else:
        nothing = "No novel class with test images: no generalised zero-shot evaluation."
        message_png(gzsl_png, nothing)
        contact_sheet([], gzsl_gallery, nothing)
        write_confusion(live_dir / "plots" / "gzsl_confusion.json", np.zeros((0, 0)), [])
        print("evaluate: no novel class with test images: no generalised zero-shot metrics")
    print(f"evaluate: {title}, balanced {m['balanced_acc']:.1%} on {m['n']} images -> {live_dir}/, {png}")


if __name__ == "__main__":
    run(main)
