"""The train and evaluate stages' work as library functions, without DVC or stage scripts:
synthetic features of four classes, a fifth known by name only."""

import numpy as np
import pytest

from fewclip.evaluation import evaluate
from fewclip.features import FeatureSet, TextFeatures
from fewclip.metrics import EPOCH_KEYS, accuracy
from fewclip.openvocab import load_classifier, save_classifier
from fewclip.training import train_classifier
from synthetic import feature_blobs

CLASSES = ["a", "b", "c", "d"]


def feature_set(x, y, classes, tag):
    return FeatureSet(x, y, classes, [f"{tag}/{i}.jpg" for i in range(len(y))], "toy", "0" * 64)


@pytest.fixture(scope="module")
def world():
    """Five blob classes; the text prior of each is its centre seen through noise, so zero-shot
    is above chance but well below what training photos give."""
    x, y = feature_blobs(60, seed=1, classes=5, dim=32, spread=1.2)
    centres = np.stack([x[y == c].mean(0) for c in range(5)])
    text = centres + np.random.default_rng(3).normal(scale=0.12, size=centres.shape)
    text = (text / np.linalg.norm(text, axis=1, keepdims=True)).astype(np.float32)
    seen = y < 4
    idx = np.flatnonzero(seen)
    tr, va, te = idx[::3], idx[1::3], idx[2::3]
    novel = np.flatnonzero(~seen)
    return {"train": feature_set(x[tr], y[tr], CLASSES, "train"), "val": feature_set(x[va], y[va], CLASSES, "val"),
            "test": feature_set(x[te], y[te], CLASSES, "test"),
            "novel": feature_set(x[novel], y[novel] - 4, ["e"], "novel"),
            "text": TextFeatures(text, CLASSES + ["e"], ["a photo of a {}."], 50.0, "toy", "0" * 64)}


def trained(world, mode, head, tmp_path):
    rows = []
    h, info = train_classifier(mode, head, {} if head != "mlp" else {"epochs": 30}, 0, world["train"], world["val"],
                               world["text"].features[:4], world["text"].logit_scale,
                               lambda epoch, row: rows.append((epoch, row)))
    save_classifier(tmp_path / "clf.pt", mode, h, CLASSES, world["text"], 0.0)
    return h, info, rows, load_classifier(tmp_path / "clf.pt")


def test_training_reports_zero_shot_first_then_each_epoch(world, tmp_path):
    head, info, rows, _ = trained(world, "few", "mlp", tmp_path)
    assert [e for e, _ in rows] == list(range(0, info["epochs_run"] + 1)) and info["epochs_run"] <= 30
    assert all(set(row) == set(EPOCH_KEYS) for _, row in rows)
    zero_shot_val = rows[0][1]["val/acc"]
    assert info["val_acc"] == accuracy(head.predict_proba(world["val"].features), world["val"].labels)
    assert info["val_acc"] > zero_shot_val and not info["kept_zero_shot"]
    _, info, rows, _ = trained(world, "few", "gda", tmp_path)  # closed form: one step after epoch 0
    assert [e for e, _ in rows] == [0, 1] and set(info["chosen"]) == {"alpha"}
    head, info, rows, _ = trained(world, "zero", "gda", tmp_path)
    assert [e for e, _ in rows] == [0] and head.name == "zero-shot" and info["kept_zero_shot"]


def test_evaluation_figures_agree_with_the_classifier(world, tmp_path):
    _, _, _, (clf, saved) = trained(world, "few", "gda", tmp_path)
    curve = [{"head": "gda", "k": "1", "acc": 0.5}, {"head": "gda", "k": "16", "as": "all"},
             {"head": "zero-shot", "k": "1", "acc": 0.4}]
    ev = evaluate(clf, saved, world["test"], world["val"], world["novel"], curve, gallery=5)
    test = world["test"]
    assert ev.metrics["test/acc"] == pytest.approx(accuracy(clf.head.predict_proba(test.features), test.labels))
    assert ev.metrics["curve/k01"] == 0.5 and ev.metrics["curve/zero_shot"] == 0.4 and ev.curve_all == ["k16"]
    assert {"gzsl/seen", "gzsl/novel", "gzsl/harmonic"} <= set(ev.metrics) and ev.gzsl_confusion[2] == CLASSES + ["e"]
    counts = ev.confusion[0]
    assert counts.sum() == len(test.labels) and np.trace(counts) / counts.sum() == pytest.approx(ev.metrics["test/acc"])
    wrong = int(len(test.labels) - np.trace(counts))
    assert len(ev.gallery[0]) == min(5, wrong) and all(p.startswith("test/") for p, _ in ev.gallery[0])
    involved = [caption.splitlines()[1] == "true e" or caption.splitlines()[2].startswith("predicted e ")
                for _, caption in ev.gzsl_gallery[0]]
    assert involved and all(involved)  # each involves the novel class
    # without novel test photos, and with a head missing from the curve: said, not figured
    ev = evaluate(clf, saved, test, world["val"], feature_set(np.zeros((0, 32), np.float32), np.zeros(0, int), ["e"], "n"),
                  [r for r in curve if r["head"] != "gda"])
    assert ev.gzsl_confusion is None and not any(k.startswith(("gzsl", "curve")) for k in ev.metrics)
    assert ev.warnings == ["head gda is not in the shots curve (shots.heads): no curve figures"]


def test_embedding_a_split_skips_what_cannot_be_decoded_and_stops_on_a_lost_class(tiny_checkpoint, tmp_path):
    from helpers import truncated_jpeg

    from fewclip import UserError
    from fewclip.backbone import LazyBackbone
    from fewclip.cache import NoCache
    from fewclip.featurize import embed_split
    from synthetic import write_image_folder

    write_image_folder(tmp_path, ["red circle", "blue square"], 3, seed=0)
    truncated_jpeg(tmp_path / "red_circle" / "cut.jpg")
    rows = [(str(p), p.parent.name) for p in sorted(tmp_path.rglob("*.jpg"))]
    backbone, told = LazyBackbone(str(tiny_checkpoint), "cpu"), []
    kw = dict(batch_size=4, workers=0, decode="cpu", engine="local", address=None, desc="train", trained=True)
    done = embed_split(backbone, rows, ["blue_square", "red_circle"], NoCache(),
                       skipped=lambda path, why: told.append(path), **kw)
    fs = done.features
    assert told == [str(tmp_path / "red_circle" / "cut.jpg")] and [p for p, _ in done.skipped] == told
    assert fs.features.shape == (6, 64) and sorted(fs.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert fs.model == str(tiny_checkpoint) and fs.model_sha256 == backbone.sha256 and done.stats.embedded == 6
    with pytest.raises(UserError, match=r"no training image of class\(es\) \['red_circle'\] could be decoded"):
        embed_split(backbone, [r for r in rows if r[1] != "red_circle" or r[0].endswith("cut.jpg")],
                    ["blue_square", "red_circle"], NoCache(), **kw)
