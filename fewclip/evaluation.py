"""Evaluating a trained classifier on feature sets: the evaluate stage's work, without files.

`evaluate` returns the headline figures (DVC metrics), the report, the confusion counts and
the galleries' items and titles; `stages/evaluate.py` writes them. The generalised figures
predict every test image (the trained classes' and the novel classes') over every class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import UserError
from .features import FeatureSet
from .metrics import accuracy, classification_metrics, gzsl_metrics
from .openvocab import OpenVocabulary
from .plots import gallery_count, mistakes, model_label
from .shots import curve_metrics

GALLERY = 30  # photos per gallery of mistakes: a JPEG of about 100-300 KB


@dataclass
class Evaluation:
    """What `evaluate` found. `metrics`: the DVC metrics, flat names ("test/acc", "curve/k16");
    `curve_all`: the curve's shot counts beyond every class (reported as "all", not figures);
    `confusion` / `gzsl_confusion`: (counts, row-normalised matrix, classes); the galleries:
    (items, title); `lines` and `warnings`: what the stage says."""

    metrics: dict
    report: dict
    confusion: tuple
    title: str
    gallery: tuple
    gzsl_confusion: tuple | None = None
    gzsl_title: str = ""
    gzsl_gallery: tuple = ((), "")
    curve_all: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def how_it_classifies(saved: dict, kept_zero_shot: bool) -> str:
    head = saved["head"]["name"]
    if saved["mode"] == "zero":
        return "zero-shot"
    return f"few-shot {head} head, which kept zero-shot CLIP" if kept_zero_shot else f"few-shot {head} head"


def evaluate(clf: OpenVocabulary, saved: dict, test: FeatureSet, val: FeatureSet, novel: FeatureSet,
             curve: list[dict], gallery: int = GALLERY, leaked: set | frozenset = frozenset()) -> Evaluation:
    """`clf` (the artefact `saved` describes) on the test, validation and novel-class test
    features, with this experiment's line of the shots `curve` (`curve_records`). `leaked`:
    the paths of test photos that duplicate a training photo (the audit's leaks): the test
    accuracy without them is reported too."""
    if test.classes != saved["classes"] or test.model_sha256 != saved["model_sha256"]:
        raise UserError("the test features and the classifier come from different classes or backbones; "
                        "rerun `dvc repro`")
    test_proba = clf.head.predict_proba(test.features)
    m = classification_metrics(test.labels, test_proba, test.classes)
    kept = clf.head.kept_zero_shot()  # also in zero mode, whose head is zero-shot CLIP
    head_name = saved["head"]["name"]  # "zero-shot" in zero mode
    report = {"classifier": {"mode": saved["mode"], "head": head_name, "chosen": clf.head.chosen(),
                             "kept_zero_shot": kept, "uses_training_photos": not kept},
              "test": {"n_images": m["n"], "per_class": m["per_class"]}}
    metrics = {"test/acc": m["acc"], "test/balanced_acc": m["balanced_acc"]}
    clean = np.array([p not in leaked for p in test.paths], bool)
    n_leaked = int((~clean).sum())
    metrics["test/acc_no_leaks"] = accuracy(test_proba[clean], test.labels[clean]) if clean.any() else 0.0
    report["test"]["leaked"] = n_leaked
    if len(val.labels):
        metrics["val/acc"] = accuracy(clf.head.predict_proba(val.features), val.labels)
    how = how_it_classifies(saved, kept)
    wrong = int((test_proba.argmax(1) != test.labels).sum())
    out = Evaluation(metrics, report, (m["counts"], m["confusion"], test.classes),
                     f"{model_label(saved['model'])}, {how}: test accuracy {m['acc']:.1%}",
                     (mistakes(test.labels, test_proba, test.classes, test.paths, gallery),
                      f"{how}: {gallery_count(wrong, gallery)} on {m['n']} test images, most confident first "
                      "(true class, predicted class, its probability)"))

    if n_leaked:
        out.warnings.append(f"{n_leaked} of {m['n']} test photos duplicate a training photo (audit/duplicates.csv): "
                            f"test accuracy {m['acc']:.1%} with them, {metrics['test/acc_no_leaks']:.1%} without")

    if len(novel.labels) and clf.novel:
        if novel.classes != clf.novel:
            raise UserError("the novel classes' test features and the classifier disagree on the novel classes; "
                            "rerun `dvc repro`")
        X = np.concatenate([test.features, novel.features])
        y = np.concatenate([test.labels, novel.labels + clf.n_trained])
        g_proba = clf.predict_proba(X)
        g = gzsl_metrics(y, g_proba, clf.classes, clf.n_trained)
        report["gzsl"] = {"n_images": g["n"], "acc": g["acc"], "seen_bias": clf.seen_bias, "per_class": g["per_class"]}
        metrics.update({f"gzsl/{k}": g[k] for k in ("seen", "novel", "harmonic")})
        out.gzsl_confusion = (g["counts"], g["confusion"], clf.classes)
        out.gzsl_title = (f"{model_label(saved['model'])}, {how} + zero-shot novel classes: "
                          f"seen {g['seen']:.1%}, novel {g['novel']:.1%}, H {g['harmonic']:.1%}")
        involves_novel = lambda t, p: t >= clf.n_trained or p >= clf.n_trained  # noqa: E731
        out.gzsl_gallery = (mistakes(y, g_proba, clf.classes, test.paths + novel.paths, gallery, only=involves_novel),
                            f"Generalised zero-shot: the most confident mistakes involving a novel class "
                            f"({', '.join(clf.novel)}), as true or as predicted class")
        out.lines.append(f"generalised zero-shot over {len(clf.classes)} classes: seen {g['seen']:.1%}, "
                         f"novel {g['novel']:.1%}, harmonic mean {g['harmonic']:.1%} on {g['n']} images")
    else:
        out.lines.append("no novel class with test images: no generalised zero-shot metrics")

    figures = curve_metrics(curve, head_name)
    if not figures:
        out.warnings.append(f"head {head_name} is not in the shots curve (shots.heads): no curve figures")
    for k, acc in figures.items():
        if acc == "all":  # a shot count more than any class has: the whole training split
            out.curve_all.append(k)
        else:
            metrics[f"curve/{k}"] = acc
    return out
