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
