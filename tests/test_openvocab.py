"""`fewclip.openvocab` on hand-made features: the scoring rule, new classes, the artefact."""

import numpy as np
import pytest
import torch

from fewclip import UserError
from fewclip.features import TextFeatures
from fewclip.heads import ZeroShotHead, make_head
from fewclip.openvocab import OpenVocabulary, load_classifier, save_classifier

# three classes on the axes of a 3-d feature space: a and b trained, c known by name only
TEXT = np.eye(3, dtype=np.float32)
X = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.6, 0.8, 0]], dtype=np.float32)


def test_the_scores_follow_the_documented_rule():
    head = ZeroShotHead(TEXT[:2] * 0.5 + 0.5 * TEXT[[1, 0]], logit_scale=10.0)  # any head over a, b
    clf = OpenVocabulary(head, ["a", "b", "c"], TEXT, logit_scale=20.0, n_trained=2, seen_bias=0.7)
    p = clf.predict_proba(X)
    zs = torch.log_softmax(torch.tensor(20.0 * X @ TEXT.T), -1).numpy()
    trained = np.logaddexp(zs[:, 0], zs[:, 1])[:, None] + np.log(head.predict_proba(X)) - 0.7
    expected = torch.softmax(torch.tensor(np.concatenate([trained, zs[:, 2:]], 1)), -1).numpy()
    assert np.allclose(p, expected, atol=1e-5) and np.allclose(p.sum(1), 1, atol=1e-6)
    assert p[2].argmax() == 2 and clf.novel == ["c"]


def test_with_classes_adds_a_novel_class_by_its_text_feature():
    head = ZeroShotHead(TEXT[:2], logit_scale=20.0)
    clf = OpenVocabulary(head, ["a", "b"], TEXT[:2], 20.0, n_trained=2)
    assert np.allclose(clf.predict_proba(X), head.predict_proba(X))  # no novel class: the head itself
    more = clf.with_classes(["c"], TEXT[2:])
    assert more.classes == ["a", "b", "c"] and more.n_trained == 2
    assert more.predict_proba(X)[2].argmax() == 2 and clf.classes == ["a", "b"]  # the original is unchanged
    with pytest.raises(ValueError, match="3 classes but 2 text features"):
        OpenVocabulary(head, ["a", "b", "c"], TEXT[:2], 20.0, 2)


def test_the_artefact_round_trips_and_old_or_foreign_files_are_named(tmp_path):
    text = TextFeatures(TEXT, ["a", "b", "c"], ["a photo of a {}."], 20.0, "ViT-B/32", "ab" * 32)
    head = make_head("gda", None, TEXT[:2], 20.0).fit(X[:2], np.array([0, 1]), n_classes=2)
    path = tmp_path / "classifier.pt"
    save_classifier(path, "few", head, ["a", "b"], text, seen_bias=0.3)
    clf, saved = load_classifier(path)
    assert clf.classes == ["a", "b", "c"] and clf.n_trained == 2 and clf.seen_bias == 0.3
    assert saved["model"] == "ViT-B/32" and saved["templates"] == ["a photo of a {}."]
    assert np.allclose(clf.head.predict_proba(X), head.predict_proba(X))
    old = torch.load(path, weights_only=True)
    del old["version"]
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(UserError, match="old.pt: a classifier of format 1, .* retrain it with `dvc repro train`"):
        load_classifier(tmp_path / "old.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="junk.pt: not a classifier written by the train stage"):
        load_classifier(tmp_path / "junk.pt")
    with pytest.raises(UserError, match="missing.pt: trained classifier not found"):
        load_classifier(tmp_path / "missing.pt")
