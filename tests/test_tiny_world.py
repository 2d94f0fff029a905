"""Zero-shot and few-shot accuracy of the real code path on the tiny CLIP world."""

import numpy as np
import pytest

from conftest import CLASSES
from fewclip.backbone import load_backbone
from fewclip.data import scan_folder
from fewclip.features import embed_images
from fewclip.heads import MLPHead, ZeroShotHead
from fewclip.prompts import class_prompt_name, text_classifier
from synthetic import write_image_folder

TEMPLATES = ["a photo of a {}.", "a picture of the {}."]


@pytest.fixture(scope="module")
def world(tiny_checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    bb = load_backbone(str(tiny_checkpoint), device="cpu")
    out = {}
    for split, n, seed in (("train", 10, 1), ("val", 5, 2), ("test", 40, 3)):
        folder = scan_folder(write_image_folder(root / split, CLASSES, n, seed=seed))
        index = {c: i for i, c in enumerate(folder.classes)}
        feats, errors = embed_images(bb, [p for p, _ in folder.samples], batch_size=32)
        assert not any(errors)
        out[split] = (feats, np.array([index[c] for _, c in folder.samples]))
    names = sorted(c.replace(" ", "_") for c in CLASSES)
    out["classes"] = names
    out["text"] = text_classifier(bb, names, TEMPLATES)
    out["logit_scale"] = bb.logit_scale
    return out


def test_class_folder_names_become_prompt_words():
    assert class_prompt_name("fire_engine") == "fire engine"
    assert class_prompt_name("  sports__car ") == "sports car"


def test_zero_shot_is_far_above_chance(world):
    x, y = world["test"]
    acc = (ZeroShotHead(world["text"], world["logit_scale"]).predict_proba(x).argmax(1) == y).mean()
    assert acc > 0.6, acc  # chance: 1/6


def test_few_shot_mlp_is_far_above_chance(world):
    (x, y), (xv, yv), (xt, yt) = world["train"], world["val"], world["test"]
    head = MLPHead(epochs=100, patience=20, seed=0).fit(x, y, xv, yv)
    acc = (head.predict_proba(xt).argmax(1) == yt).mean()
    assert acc > 0.6, acc


def test_a_class_known_by_name_only_is_recognised_beside_the_trained_ones(world):
    """Hold one class out of training; give it by name only. The open-vocabulary classifier
    recognises it far above chance while the trained classes keep their accuracy."""
    from fewclip.heads import GDA
    from fewclip.metrics import gzsl_metrics
    from fewclip.openvocab import OpenVocabulary

    names, text = world["classes"], world["text"]
    novel = names.index("yellow_cross")
    trained = [i for i in range(len(names)) if i != novel]
    remap = {old: new for new, old in enumerate(trained + [novel])}
    order = [names[i] for i in trained + [novel]]

    def part(split, keep):
        x, y = world[split]
        mask = np.isin(y, keep)
        return x[mask], np.array([remap[v] for v in y[mask]])

    (x, y), (xv, yv) = part("train", trained), part("val", trained)
    xt, yt = part("test", trained + [novel])
    head = GDA(text[trained], world["logit_scale"]).fit(x, y, xv, yv)
    seen_only = (head.predict_proba(xt[yt < 5]).argmax(1) == yt[yt < 5]).mean()

    clf = OpenVocabulary(head, order, text[trained + [novel]], world["logit_scale"], n_trained=5)
    m = gzsl_metrics(yt, clf.predict_proba(xt), order, 5)
    assert m["novel"] > 0.6, m["novel"]  # chance: 1/6
    assert m["seen"] >= seen_only - 0.05, (m["seen"], seen_only)
    assert m["harmonic"] > 0.6

    # Calibrated stacking: a large bias against trained classes hands everything to the novel one.
    biased = OpenVocabulary(head, order, text[trained + [novel]], world["logit_scale"], 5, seen_bias=50.0)
    assert (biased.predict_proba(xt).argmax(1) == 5).all()
    # Without novel classes it is the head itself; with the zero-shot head, zero-shot CLIP.
    assert np.allclose(OpenVocabulary(head, order[:5], text[trained], 1.0, 5).predict_proba(xt), head.predict_proba(xt))
    zs = ZeroShotHead(text[trained], world["logit_scale"])
    full = ZeroShotHead(text[trained + [novel]], world["logit_scale"]).predict_proba(xt)
    assert np.allclose(OpenVocabulary(zs, order, text[trained + [novel]], world["logit_scale"], 5).predict_proba(xt),
                       full, atol=1e-5)


def test_gzsl_harmonic_mean_on_a_hand_checked_case():
    from fewclip.metrics import gzsl_metrics

    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 1, 0, 2, 0])  # a: 2/2, b: 1/2, novel c: 1/2
    m = gzsl_metrics(y, np.eye(3)[pred], ["a", "b", "c"], n_trained=2)
    assert m["seen"] == pytest.approx(0.75) and m["novel"] == pytest.approx(0.5)
    assert m["harmonic"] == pytest.approx(2 * 0.75 * 0.5 / 1.25)  # 0.6
    assert m["acc"] == pytest.approx(4 / 6)
    assert np.isnan(gzsl_metrics(y[:4], np.eye(3)[pred[:4]], ["a", "b", "c"], 2)["harmonic"])
