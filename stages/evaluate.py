"""Stage evaluate: test accuracy, balanced accuracy, per-class accuracy, confusion matrix;
and, when there are novel classes with test images, the generalised zero-shot metrics.

Metrics go to <live_dir>/metrics.json and the confusion matrices to
<live_dir>/plots/sklearn/{confusion_matrix,gzsl_confusion_matrix}.json (DVC plots) and to
<png> and gzsl_<png> (pictures). The plain metrics are over the trained classes only; the
generalised ones predict every test image (trained classes' and novel classes') over every
class.
"""

import sys
from pathlib import Path

import numpy as np
from dvclive import Live

from fewclip import UserError
from fewclip.features import load_features
from fewclip.metrics import classification_metrics, gzsl_metrics
from fewclip.openvocab import load_classifier
from fewclip.params import run
from fewclip.plots import confusion_matrix_png, message_png, model_label


def main() -> None:
    features = Path(sys.argv[1] if len(sys.argv) > 1 else "features")
    model_path = Path(sys.argv[2] if len(sys.argv) > 2 else "models/classifier.pt")
    live_dir = sys.argv[3] if len(sys.argv) > 3 else "metrics/evaluate"
    png = Path(sys.argv[4] if len(sys.argv) > 4 else "plots/confusion_matrix.png")
    clf, saved = load_classifier(model_path)
    test = load_features(features / "test.npz")
    novel = load_features(features / "zero_shot.npz")
    if test.classes != saved["classes"] or test.model_sha256 != saved["model_sha256"]:
        raise UserError(f"{features}/test.npz and {model_path} come from different classes or "
                        "backbones; rerun `dvc repro`")
    proba = clf.head.predict_proba(test.features)
    m = classification_metrics(test.labels, proba, test.classes)

    with Live(dir=live_dir, dvcyaml=False, save_dvc_exp=False) as live:
        live.log_metric("test/acc", m["acc"], plot=False)
        live.log_metric("test/balanced_acc", m["balanced_acc"], plot=False)
        for name, acc in m["per_class"].items():
            live.log_metric(f"test/per_class/{name}", acc, plot=False)
        live.summary["test"]["n_images"] = m["n"]
        preds = proba.argmax(1)
        live.log_sklearn_plot("confusion_matrix", [test.classes[i] for i in test.labels],
                              [test.classes[i] for i in preds], name="confusion_matrix.json",
                              normalized=True, title="Test confusion matrix (row-normalised)")
        g = None
        if len(novel.labels) and clf.novel:
            classes = clf.classes
            if novel.classes != clf.novel:
                raise UserError(f"{features}/zero_shot.npz and {model_path} disagree on the novel classes; "
                                "rerun `dvc repro`")
            X = np.concatenate([test.features, novel.features])
            y = np.concatenate([test.labels, novel.labels + clf.n_trained])
            g_proba = clf.predict_proba(X)
            g = gzsl_metrics(y, g_proba, classes, clf.n_trained)
            for k in ("seen", "novel", "harmonic", "acc"):
                live.log_metric(f"gzsl/{k}", g[k], plot=False)
            for name, acc in g["per_class"].items():
                live.log_metric(f"gzsl/per_class/{name}", acc, plot=False)
            live.log_metric("gzsl/seen_bias", clf.seen_bias, plot=False)
            live.summary["gzsl"]["n_images"] = g["n"]
            live.log_sklearn_plot("confusion_matrix", [classes[i] for i in y],
                                  [classes[i] for i in g_proba.argmax(1)],
                                  name="gzsl_confusion_matrix.json", normalized=True,
                                  title="Generalised zero-shot confusion matrix, trained and novel classes")
    how = "zero-shot" if saved["mode"] == "zero" else f"few-shot {saved['head']['name']} head"
    title = f"{model_label(saved['model'])}, {how}: test accuracy {m['acc']:.1%}"
    confusion_matrix_png(m["confusion"], test.classes, png, title)
    gzsl_png = png.with_name(f"gzsl_{png.name}")
    if g is not None:
        confusion_matrix_png(g["confusion"], clf.classes, gzsl_png,
                             f"{model_label(saved['model'])}, {how} + zero-shot novel classes: "
                             f"seen {g['seen']:.1%}, novel {g['novel']:.1%}, H {g['harmonic']:.1%}")
        print(f"evaluate: generalised zero-shot over {len(clf.classes)} classes: seen {g['seen']:.1%}, "
              f"novel {g['novel']:.1%}, harmonic mean {g['harmonic']:.1%} on {g['n']} images -> {gzsl_png}")
    else:
        message_png(gzsl_png, "No novel class with test images: no generalised zero-shot evaluation.")
        print("evaluate: no novel class with test images: no generalised zero-shot metrics")
    print(f"evaluate: {title}, balanced {m['balanced_acc']:.1%} on {m['n']} images -> {live_dir}/, {png}")


if __name__ == "__main__":
    run(main)
