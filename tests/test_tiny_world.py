"""Zero-shot and few-shot accuracy of the real code path on the tiny CLIP world."""

import numpy as np
import pytest

from conftest import CLASSES
from fewclip import UserError
from fewclip.backbone import load_backbone
from fewclip.data import scan_folder
from fewclip.embedding import embed_images
from fewclip.heads import GDA, MLPHead, ZeroShotHead
from fewclip.metrics import gzsl_metrics
from fewclip.openvocab import OpenVocabulary
from fewclip.prompts import class_prompt_name, text_classifier
from synthetic import write_image_folder

TEMPLATES = ["a photo of a {}.", "a picture of the {}."]


@pytest.fixture(scope="module", params=["openai", "open_clip"])
def world(request, tmp_path_factory):
    """The tiny world embedded by the tiny CLIP, through either backbone family: OpenAI's
    `clip` (a checkpoint file) or open_clip (the same trained weights in its own layout, run
    by its own model class, tokenizer and preprocessing)."""
    root = tmp_path_factory.mktemp("world")
    name = str(request.getfixturevalue("tiny_checkpoint" if request.param == "openai" else "tiny_open_clip"))
    bb = load_backbone(name, device="cpu")
    assert bb.family == request.param
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


@pytest.fixture(scope="module")
def open_world(world):
    """One class held out of training and given by name only: a gda head on the other five,
    the test images of all six, classes ordered trained first (the novel one last)."""
    names, text = world["classes"], world["text"]
    novel = names.index("yellow_cross")
    trained = [i for i in range(len(names)) if i != novel]
    remap = {old: new for new, old in enumerate(trained + [novel])}

    def part(split, keep):
        x, y = world[split]
        mask = np.isin(y, keep)
        return x[mask], np.array([remap[v] for v in y[mask]])

    (x, y), (xv, yv) = part("train", trained), part("val", trained)
    xt, yt = part("test", trained + [novel])
    head = GDA(text[trained], world["logit_scale"]).fit(x, y, xv, yv)
    return {"head": head, "order": [names[i] for i in trained + [novel]], "text": text[trained + [novel]],
            "scale": world["logit_scale"], "xt": xt, "yt": yt}


def test_a_class_known_by_name_only_is_recognised_beside_the_trained_ones(open_world):
    """The open-vocabulary classifier recognises the novel class far above chance while the
    trained classes keep their accuracy."""
    w = open_world
    xt, yt = w["xt"], w["yt"]
    seen_only = (w["head"].predict_proba(xt[yt < 5]).argmax(1) == yt[yt < 5]).mean()
    clf = OpenVocabulary(w["head"], w["order"], w["text"], w["scale"], n_trained=5)
    m = gzsl_metrics(yt, clf.predict_proba(xt), w["order"], 5)
    assert m["novel"] > 0.6, m["novel"]  # chance: 1/6
    assert m["seen"] >= seen_only - 0.05, (m["seen"], seen_only)
    assert m["harmonic"] > 0.6


def test_a_large_seen_bias_hands_every_image_to_the_novel_class(open_world):
    """Calibrated stacking: the bias is taken off every trained class's score."""
    w = open_world
    biased = OpenVocabulary(w["head"], w["order"], w["text"], w["scale"], 5, seen_bias=50.0)
    assert (biased.predict_proba(w["xt"]).argmax(1) == 5).all()


def test_without_novel_classes_the_classifier_is_the_head(open_world):
    w = open_world
    clf = OpenVocabulary(w["head"], w["order"][:5], w["text"][:5], 1.0, 5)
    assert np.allclose(clf.predict_proba(w["xt"]), w["head"].predict_proba(w["xt"]))


def test_with_the_zero_shot_head_it_is_zero_shot_clip_over_every_class(open_world):
    w = open_world
    zs = ZeroShotHead(w["text"][:5], w["scale"])
    full = ZeroShotHead(w["text"], w["scale"]).predict_proba(w["xt"])
    assert np.allclose(OpenVocabulary(zs, w["order"], w["text"], w["scale"], 5).predict_proba(w["xt"]), full, atol=1e-5)


def test_an_over_long_prompt_is_refused_with_one_line_naming_it():
    """CLIP reads 77 tokens; a longer prompt would be cut short without a word. The backbone's
    own tokenizer counts, without its weights."""
    from fewclip.backbone import openai

    class Unused:
        tokenizer = openai.tokenizer()
        context_length, tokenizer_id = tokenizer.context_length, tokenizer.tokenizer_id
        count_tokens = staticmethod(tokenizer.count_tokens)

        def encode_texts(self, texts):
            raise AssertionError("nothing may be encoded")

    long = "a very long description of a bench " * 12
    with pytest.raises(UserError, match=r"the prompt 'a photo of a a very long.*' of class 'bench' is \d+ tokens "
                                        r"long; the text encoder reads at most 77: shorten the class's names or the templates$"):
        text_classifier(Unused(), ["bench"], ["a photo of a {}."], {"bench": ["bench", long]})
