"""The head contract (`fewclip.heads.base`), checked for every head the same way: params that
fitting never changes, a repeated fit that is a fresh fit, a clear error before fit, save and
load of the declared fitted state, and class flags that say what a head takes."""

import io

import numpy as np
import pytest
import torch

from fewclip.heads import HEADS, NotFittedError, ZeroShotHead, load_head, make_head, save_head
from synthetic import feature_blobs

C, D = 6, 32


def blobs(n_per_class, seed, spread=0.8):
    return feature_blobs(n_per_class, seed, classes=C, dim=D, spread=spread)


TEXT = blobs(1, seed=50, spread=0.6)[0]  # a noisy "text prior": one row per class
# short training; tip-adapter-f in batches smaller than the data, so that its seed matters
FAST = {"mlp": {"epochs": 8}, "tip-adapter-f": {"epochs": 3, "batch_size": 8}, "zs-linear": {"checkpoints": [5, 10]}}


def head(name, seed=0, **params):
    return make_head(name, {**FAST.get(name, {}), **params}, text_features=TEXT, logit_scale=50.0, seed=seed)


def same_state(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


def data():
    (x, y), (xv, yv), (xt, _) = blobs(4, 1), blobs(2, 2), blobs(10, 3)
    return x, y, xv, yv, xt


@pytest.mark.parametrize("name", list(HEADS))
def test_params_survive_fit_and_a_second_fit_is_a_fresh_fit(name):
    x, y, xv, yv, xt = data()
    h = head(name)
    before = {k: v for k, v in h.get_params().items() if k != "text_features"}
    first = h.fit(x, y, xv, yv).predict_proba(xt)
    after = {k: v for k, v in h.get_params().items() if k != "text_features"}
    assert after == before  # what it chose lives in `<param>_`, never in the params
    assert set(h.chosen()) == set(h.chosen_on_validation)
    # fit on other data, then on the first data again: the same as the first fit
    x2, y2 = blobs(3, 9)
    h.fit(x2, y2, xv[::-1], yv[::-1])
    assert np.array_equal(h.fit(x, y, xv, yv).predict_proba(xt), first)
    # and a head rebuilt from its params alone fits to the same result
    again = type(h)(**h.get_params()).fit(x, y, xv, yv)
    assert np.array_equal(again.predict_proba(xt), first)


@pytest.mark.parametrize("name", list(HEADS))
def test_predicting_before_fit_is_a_clear_error(name):
    with pytest.raises(NotFittedError, match=r"is not fitted: call fit"):
        head(name).predict_proba(data()[4])
    with pytest.raises(NotFittedError):
        save_head(head(name))


@pytest.mark.parametrize("name", [*HEADS, "zero-shot"])
def test_save_and_load_give_the_same_predictions(name):
    x, y, xv, yv, xt = data()
    h = ZeroShotHead(TEXT, 50.0) if name == "zero-shot" else head(name).fit(x, y, xv, yv)
    buf = io.BytesIO()
    torch.save(save_head(h), buf)
    buf.seek(0)
    again = load_head(torch.load(buf, weights_only=True))
    assert type(again) is type(h) and again.chosen() == h.chosen()
    assert np.allclose(again.predict_proba(xt), h.predict_proba(xt), atol=1e-6)


@pytest.mark.parametrize("name", list(HEADS))
def test_class_flags_say_what_a_head_takes_and_does(name):
    cls = HEADS[name]
    params = cls.param_names()
    assert cls.needs_text == ("text_features" in params and "logit_scale" in params)
    assert cls.uses_seed == ("seed" in params)
    assert not cls.stochastic or cls.uses_seed
    x, y, xv, yv, xt = data()
    seen = []
    h = head(name).fit(x, y, xv, yv, on_epoch=lambda epoch, row: seen.append(epoch))
    if cls.trains_in_epochs:  # (zs-linear's history is empty when it keeps zero-shot)
        assert seen == [row["epoch"] for row in h.history_]
    else:
        assert seen == [] and not hasattr(h, "history_")
    # listening to the epochs changes nothing that is learnt
    assert same_state(save_head(head(name).fit(x, y, xv, yv))["state"], save_head(h)["state"])
    # another seed: another fitted state for a stochastic head (its predictions may still agree,
    # e.g. when validation keeps zero-shot), the same state for the others
    other = head(name, seed=1).fit(x, y, xv, yv)
    assert same_state(save_head(other)["state"], save_head(h)["state"]) != cls.stochastic
