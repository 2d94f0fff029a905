import numpy as np
import pytest
import torch

from fewclip import SettingError
from fewclip.heads import MLPHead, ZeroShotHead, class_balanced_sampler, make_head


def gaussian_classes(n_per_class, n_classes=5, dim=32, spread=0.25, seed=0, world=0):
    """Classes as Gaussian clusters around random unit vectors (drawn from `world`),
    samples drawn from `seed`; features L2-normalised."""
    means = np.random.default_rng(world).normal(size=(n_classes, dim))
    rng = np.random.default_rng(seed)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    counts = n_per_class if isinstance(n_per_class, (list, tuple)) else [n_per_class] * n_classes
    y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    x = means[y] + spread * rng.normal(size=(len(y), dim)) / np.sqrt(dim) * 3
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), y, means.astype(np.float32)


def test_weighted_sampler_balances_classes_and_uniform_does_not():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    gen = torch.Generator().manual_seed(0)
    drawn = np.concatenate([labels[list(class_balanced_sampler(labels, gen))] for _ in range(100)])
    share = np.bincount(drawn, minlength=3) / len(drawn)
    assert np.all(np.abs(share - 1 / 3) < 0.02), share
    head = MLPHead(sampler="uniform")
    drawn = labels[list(head.make_sampler(labels, torch.Generator().manual_seed(0)))]
    assert np.array_equal(np.bincount(drawn), [90, 9, 1])  # a permutation: the imbalance stays


def test_weighted_sampler_helps_the_rare_class():
    """With 200 images in four classes and 8 in the fifth, balancing raises the rare class's recall."""
    recall = {"weighted": [], "uniform": []}
    for seed in (1, 2, 3):
        x, y, _ = gaussian_classes([200, 200, 200, 200, 8], spread=0.5, seed=seed, world=seed)
        xt, yt, _ = gaussian_classes(300, spread=0.5, seed=seed + 10, world=seed)  # fresh samples
        xt, yt = xt[yt == 4], yt[yt == 4]  # the rare class only
        for sampler in recall:
            head = MLPHead(sampler=sampler, epochs=15, seed=0).fit(x, y)
            recall[sampler].append((head.predict_proba(xt).argmax(1) == yt).mean())
    assert all(w >= u for w, u in zip(recall["weighted"], recall["uniform"])), recall
    assert np.mean(recall["weighted"]) > np.mean(recall["uniform"]) + 0.03, recall


def test_mlp_learns_separable_classes_and_keeps_its_best_epoch():
    x, y, _ = gaussian_classes(40, seed=2)
    xv, yv, _ = gaussian_classes(20, seed=3)
    xt, yt, _ = gaussian_classes(100, seed=4)
    seen = []
    head = MLPHead(epochs=60, patience=10, seed=0).fit(x, y, xv, yv, on_epoch=lambda e, m: seen.append(e))
    acc = (head.predict_proba(xt).argmax(1) == yt).mean()
    assert acc > 0.9
    assert seen == [h["epoch"] for h in head.history_]
    val = [h["val/acc"] for h in head.history_]
    assert head.history_[head.best_epoch_ - 1]["val/acc"] == max(val)
    assert len(head.history_) <= head.best_epoch_ + 10  # stopped early, patience 10
    p = head.predict_proba(xt)
    assert np.allclose(p.sum(1), 1, atol=1e-5)
    assert (np.log(p).min() < np.log(1e-3))  # logits can go negative: no ReLU on the output


def test_same_seed_same_numbers_other_seed_other_numbers():
    x, y, _ = gaussian_classes(20, seed=5)
    xv, yv, _ = gaussian_classes(10, seed=6)
    a = MLPHead(epochs=10, seed=1).fit(x, y, xv, yv)
    b = MLPHead(epochs=10, seed=1).fit(x, y, xv, yv)
    c = MLPHead(epochs=10, seed=2).fit(x, y, xv, yv)
    assert a.history_ == b.history_ and np.array_equal(a.predict_proba(x), b.predict_proba(x))
    assert not np.array_equal(a.predict_proba(x), c.predict_proba(x))


def test_zero_shot_head_classifies_by_the_nearest_text_feature():
    x, y, means = gaussian_classes(30, spread=0.2, seed=8)
    head = ZeroShotHead(means).fit(x, y)
    assert (head.predict_proba(x).argmax(1) == y).mean() > 0.95


def test_make_head_rejects_unknown_heads_and_params():
    """The library's own words: the setting as it takes it, no params.yaml key."""
    with pytest.raises(SettingError, match="^head='svm': one of mlp, linear"):
        make_head("svm", {})
    with pytest.raises(SettingError, match=r"^mlp settings=\['depth'\]: not settings of this head \(it has hidden, dropout"):
        make_head("mlp", {"depth": 3})
    x, y, _ = gaussian_classes(4)
    with pytest.raises(SettingError, match="^sampler='balanced': one of weighted, uniform"):
        make_head("mlp", {"sampler": "balanced"}).fit(x, y)
