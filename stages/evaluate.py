"""Stage evaluate: test accuracy, balanced accuracy, per-class accuracy, confusion matrix.

Metrics go to <live_dir>/metrics.json and the confusion matrix to
<live_dir>/plots/sklearn/confusion_matrix.json (DVC plots) and <png> (a picture).
"""

import sys
from pathlib import Path

import torch
from dvclive import Live

from fewclip import UserError
from fewclip.features import load_features
from fewclip.heads import load_head
from fewclip.metrics import classification_metrics
from fewclip.params import run
from fewclip.plots import confusion_matrix_png, model_label


def main() -> None:
    features = Path(sys.argv[1] if len(sys.argv) > 1 else "features")
    model_path = Path(sys.argv[2] if len(sys.argv) > 2 else "models/classifier.pt")
    live_dir = sys.argv[3] if len(sys.argv) > 3 else "metrics/evaluate"
    png = Path(sys.argv[4] if len(sys.argv) > 4 else "plots/confusion_matrix.png")
    saved = torch.load(model_path, map_location="cpu", weights_only=True)
    test = load_features(features / "test.npz")
    if test.classes != saved["classes"] or test.model_sha256 != saved["model_sha256"]:
        raise UserError(f"{features}/test.npz and {model_path} come from different classes or "
                        "backbones; rerun `dvc repro`")
    head = load_head(saved["head"])
    proba = head.predict_proba(test.features)
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
    how = "zero-shot" if saved["mode"] == "zero" else f"few-shot {saved['head']['name']} head"
    title = f"{model_label(saved['model'])}, {how}: test accuracy {m['acc']:.1%}"
    confusion_matrix_png(m["confusion"], test.classes, png, title)
    print(f"evaluate: {title}, balanced {m['balanced_acc']:.1%} on {m['n']} images -> {live_dir}/, {png}")


if __name__ == "__main__":
    run(main)
