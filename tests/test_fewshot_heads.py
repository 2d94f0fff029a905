"""The few-shot heads on synthetic features with known structure.

Ten Gaussian classes on the unit sphere in 64 dimensions; each class's "text embedding" is
its mean plus noise, so the zero-shot classifier is informative but imperfect (about 72%
here), and the Bayes-optimal classifier (nearest true mean; about 98%) is known.
"""

import numpy as np
import pytest

from fewclip.heads import HEADS, ZeroShotHead, make_head
from fewclip.shots import draw_shots

C, D = 10, 64


class World:
    def __init__(self, seed=0, spread=2.0, text_noise=1.5):
        rng = np.random.default_rng(seed)
        self.means = self._unit(rng.normal(size=(C, D)))
        self.text = self._unit(self.means + text_noise * rng.normal(size=(C, D)) / np.sqrt(D)).astype(np.float32)
        self.spread = spread

    @staticmethod
    def _unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def draw(self, n_per_class, seed):
        rng = np.random.default_rng(seed)
        y = np.repeat(np.arange(C), n_per_class)
        x = self._unit(self.means[y] + self.spread * rng.normal(size=(len(y), D)) / np.sqrt(D))
        return x.astype(np.float32), y


@pytest.fixture(scope="module")
def world():
    w = World()
    w.test = w.draw(200, seed=999)
    return w


def acc(head, data):
    x, y = data
    return float((head.predict_proba(x).argmax(1) == y).mean())


def fit(world, name, k, seed, n_val=4):
    x, y = world.draw(k, seed=100 + seed)
    xv, yv = world.draw(min(k, n_val), seed=200 + seed)
    return make_head(name, None, world.text, 100.0, seed=seed).fit(x, y, xv, yv, n_classes=C)


def test_the_world_is_as_described(world):
    x, y = world.test
    bayes = float(((x @ world.means.T).argmax(1) == y).mean())
    zero_shot = acc(ZeroShotHead(world.text), world.test)
    assert 0.95 < bayes and 0.6 < zero_shot < 0.8


@pytest.mark.parametrize("name", list(HEADS))
def test_every_head_nears_the_bayes_accuracy_with_enough_shots(world, name):
    x, y = world.test
    bayes = float(((x @ world.means.T).argmax(1) == y).mean())
    assert acc(fit(world, name, 64, seed=0, n_val=16), world.test) > bayes - 0.04


def test_text_prior_heads_beat_mlp_and_linear_at_one_and_two_shots(world):
    for k in (1, 2):
        mean = {name: np.mean([acc(fit(world, name, k, seed), world.test) for seed in range(5)]) for name in HEADS}
        zero_shot = acc(ZeroShotHead(world.text), world.test)
        for prior in [name for name, cls in HEADS.items() if cls.needs_text]:
            assert mean[prior] > max(mean["mlp"], mean["linear"]) + 0.02, (k, mean)
            assert mean[prior] > zero_shot, (k, prior, mean[prior], zero_shot)


def test_hyper_parameters_are_chosen_on_validation_only(world):
    """Validation labels decide: shuffled validation labels must change the choice."""
    x, y = world.draw(8, seed=1)
    xv, yv = world.draw(4, seed=2)
    honest = make_head("gda", None, world.text, 100.0).fit(x, y, xv, yv, n_classes=C)
    shuffled = make_head("gda", None, world.text, 100.0).fit(x, y, xv, np.random.default_rng(0).permutation(yv), n_classes=C)
    assert honest.alpha_ != shuffled.alpha_
    assert honest.alpha_ >= 1  # the class means are worth more than the noisy text prior here


def test_zs_linear_leaves_zero_shot_only_when_validation_says_so(world):
    """The mixing weight 0 is zero-shot CLIP itself; shuffled validation labels keep it there."""
    x, y = world.draw(2, seed=2)
    xv, yv = world.draw(4, seed=3)
    honest = make_head("zs-linear", None, world.text, 100.0).fit(x, y, xv, yv, n_classes=C)
    shuffled = make_head("zs-linear", None, world.text, 100.0).fit(
        x, y, xv, np.random.default_rng(0).permutation(yv), n_classes=C)
    zero_shot = ZeroShotHead(world.text)
    assert honest.gamma_ > 0 and acc(honest, world.test) > acc(zero_shot, world.test) + 0.05
    assert shuffled.gamma_ == 0 and shuffled.history_ == []
    assert np.allclose(shuffled.predict_proba(world.test[0]), zero_shot.predict_proba(world.test[0]), atol=1e-4)


def test_draw_shots_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(4), [30, 10, 3, 1])
    tr, va = draw_shots(labels, 8, 4, np.random.default_rng(0))
    assert not set(tr) & set(va)
    assert np.bincount(labels[tr], minlength=4).tolist() == [8, 8, 2, 1]
    assert np.bincount(labels[va], minlength=4).tolist() == [4, 2, 1, 0]
    tr2, va2 = draw_shots(labels, 8, 4, np.random.default_rng(0))
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    tr1, va1 = draw_shots(labels, 1, 4, np.random.default_rng(0))
    assert np.bincount(labels[tr1]).tolist() == [1, 1, 1, 1] and np.bincount(labels[va1]).tolist() == [1, 1, 1]


@pytest.mark.parametrize("name", [n for n, cls in HEADS.items() if cls.needs_text])
def test_a_text_prior_head_says_when_it_kept_zero_shot(world, name):
    """Validation labels that zero-shot CLIP gets all right leave every text-prior head at its
    prior, zero-shot CLIP, and it says so (the train stage's line and report.json); with
    honest labels and enough shots it leaves the prior and says that too. It predicts as
    zero-shot exactly when it says it kept zero-shot."""
    x, y = world.draw(8, seed=5)
    xv, yv = world.draw(4, seed=6)
    zs = ZeroShotHead(world.text)
    zero_shot = zs.predict_proba(world.test[0]).argmax(1)
    honest = make_head(name, None, world.text, 100.0).fit(x, y, xv, yv, n_classes=C)
    kept = make_head(name, None, world.text, 100.0).fit(x, y, xv, zs.predict_proba(xv).argmax(1), n_classes=C)
    assert not honest.kept_zero_shot() and kept.kept_zero_shot()
    assert (kept.predict_proba(world.test[0]).argmax(1) == zero_shot).all()
    assert (honest.predict_proba(world.test[0]).argmax(1) != zero_shot).any()


def test_heads_without_a_text_prior_never_claim_zero_shot(world):
    x, y = world.draw(2, seed=5)
    for name in [n for n, cls in HEADS.items() if not cls.needs_text]:
        assert not make_head(name, None, seed=0).fit(x, y, x, y, n_classes=C).kept_zero_shot()
