"""`fewclip.metrics` on hand-checked cases."""

import numpy as np
import pytest

from fewclip.metrics import classification_metrics, gzsl_metrics


def test_accuracy_balanced_accuracy_and_confusion_rows():
    # a: 3 images, all right; b: 1 image, wrong (predicted a); c: never in y_true
    y = np.array([0, 0, 0, 1])
    pred = np.array([0, 0, 0, 0])
    m = classification_metrics(y, np.eye(3)[pred], ["a", "b", "c"])
    assert m["acc"] == pytest.approx(0.75) and m["n"] == 4
    assert m["balanced_acc"] == pytest.approx(0.5)  # mean recall over a and b; c is absent
    assert m["per_class"] == {"a": 1.0, "b": 0.0}
    assert m["counts"].tolist() == [[3, 0, 0], [1, 0, 0], [0, 0, 0]]  # rows: true classes
    assert np.allclose(m["confusion"], [[1, 0, 0], [1, 0, 0], [0, 0, 0]])


def test_predictions_are_the_most_probable_class():
    proba = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    m = classification_metrics(np.array([1, 2]), proba, ["a", "b", "c"])
    assert m["acc"] == pytest.approx(0.5) and m["counts"][2].tolist() == [1, 0, 0]


def test_gzsl_harmonic_mean_on_a_hand_checked_case():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 1, 0, 2, 0])  # a: 2/2, b: 1/2, novel c: 1/2
    m = gzsl_metrics(y, np.eye(3)[pred], ["a", "b", "c"], n_trained=2)
    assert m["seen"] == pytest.approx(0.75) and m["novel"] == pytest.approx(0.5)
    assert m["harmonic"] == pytest.approx(2 * 0.75 * 0.5 / 1.25)  # 0.6
    assert m["acc"] == pytest.approx(4 / 6)
    # no novel image: the novel and harmonic figures are undefined, not zero
    assert np.isnan(gzsl_metrics(y[:4], np.eye(3)[pred[:4]], ["a", "b", "c"], 2)["harmonic"])
    # a novel class never recognised: harmonic mean 0
    assert gzsl_metrics(y, np.eye(3)[np.array([0, 0, 1, 1, 0, 0])], ["a", "b", "c"], 2)["harmonic"] == 0
