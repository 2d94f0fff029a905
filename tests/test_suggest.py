"""`fewclip.suggest.label_next` on synthetic features: balanced, typical picks beat random
ones; cold starts with and without text features; never a near-duplicate of a labelled photo."""

import numpy as np

from fewclip.heads import make_head
from fewclip.suggest import label_next
from synthetic import feature_blobs

CLASSES = 8


def imbalanced_pool(seed):
    """A pool in which classes have 4 to 60 photos, as unlabelled folders do."""
    X, y = feature_blobs(60, seed=seed, classes=CLASSES, dim=32, spread=1.2)
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(y == c), n, replace=False)
                           for c, n in enumerate(np.linspace(4, 60, CLASSES).astype(int))])
    return X[keep], y[keep]


def ncm_accuracy(X, y, Xt, yt):
    head = make_head("ncm", {}).fit(X, y, n_classes=CLASSES)
    return float((head.predict_proba(Xt).argmax(1) == yt).mean())


def test_balanced_typical_picks_beat_random():
    Xt, yt = feature_blobs(30, seed=99, classes=CLASSES, dim=32, spread=1.2)
    rule, rand, covered_rule, covered_rand = [], [], [], []
    for seed in range(10):
        X, y = imbalanced_pool(seed)
        rng = np.random.default_rng(seed)
        start = np.array([rng.choice(np.flatnonzero(y == c)) for c in range(CLASSES)])
        pool = np.setdiff1d(np.arange(len(y)), start)
        picks = label_next(X[pool], X[start], y[start], CLASSES, n_classes=CLASSES, seed=seed)
        assert len(picks) == CLASSES == len(set(picks))
        random_picks = rng.choice(len(pool), CLASSES, replace=False)
        for chosen, acc, covered in ((picks, rule, covered_rule), (random_picks, rand, covered_rand)):
            idx = np.concatenate([start, pool[chosen]])
            acc.append(ncm_accuracy(X[idx], y[idx], Xt, yt))
            covered.append(len(set(y[pool[chosen]])))
    assert np.mean(covered_rule) > np.mean(covered_rand) + 1  # balance: more classes get a new label
    assert np.mean(rule) > np.mean(rand) + 0.01, (np.mean(rule), np.mean(rand))


def test_cold_start_without_labels():
    X, y = imbalanced_pool(0)
    no = np.zeros((0, X.shape[1]), np.float32)
    # without text features: the pool's own clusters
    picks = label_next(X, no, np.zeros(0, int), CLASSES, n_classes=CLASSES)
    assert len(set(picks)) == CLASSES and len(set(y[picks])) >= CLASSES - 2
    # with text features (here the class centres): balanced by zero-shot prediction
    text = np.stack([X[y == c].mean(0) for c in range(CLASSES)])
    picks = label_next(X, no, np.zeros(0, int), CLASSES, n_classes=CLASSES, text_features=text)
    assert len(set(y[picks])) >= CLASSES - 1


def test_never_a_near_duplicate_of_a_labelled_photo_and_all_of_a_small_pool():
    X, y = imbalanced_pool(1)
    labelled = np.arange(0, len(y), 7)
    unlabelled = np.setdiff1d(np.arange(len(y)), labelled)[:40]
    twin = X[unlabelled[5]] + 0.01 * np.random.default_rng(0).normal(size=X.shape[1]).astype(np.float32)
    pool = np.concatenate([X[unlabelled], X[labelled], (twin / np.linalg.norm(twin))[None]])  # copies, a twin
    picks = label_next(pool, X[labelled], y[labelled], len(pool) + 10, n_classes=CLASSES)
    assert sorted(picks) == list(range(40)) + [len(pool) - 1]  # all but the labelled photos' copies
    assert picks[-1] in (5, len(pool) - 1)  # of the twins, one comes last
    head = label_next(pool, X[labelled], y[labelled], 20, n_classes=CLASSES)
    sims = pool[head] @ pool[head].T - 2 * np.eye(len(head))
    assert sims.max() < 0.95 and head == picks[:20]  # no near-duplicates while others remain
