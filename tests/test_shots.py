"""`fewclip.shots`: the fit plan, stable draws, the fit cache, and a curve that does not
depend on how many processes fit it nor on whether its rows come from the cache."""

import numpy as np
import pytest

import fewclip.shots as shots
from fewclip.cache import FitCache
from fewclip.features import FeatureSet
from fewclip.shots import draw_ranked, fit_plan, fit_processes, rank_keys, shots_curve
from synthetic import feature_blobs

HEADS = ["gda", "mlp", "ncm"]
PARAMS = {"mlp": {"epochs": 5}, "gda": None, "ncm": None}
KS = [1, 2, "all"]


def blobs(n_per_class, seed, name):
    x, y = feature_blobs(n_per_class, seed, classes=4, dim=16)
    return FeatureSet(x, y, list("abcd"), [f"{name}/{i}.jpg" for i in range(len(y))], "toy", "0" * 64)


@pytest.fixture(scope="module")
def world():
    return blobs(8, 1, "train"), blobs(3, 2, "val"), blobs(10, 3, "test"), blobs(1, 4, "text").features


def curve(world, heads=HEADS, params=PARAMS, train=None, **kw):
    tr, val, test, text = world
    return shots_curve(train or tr, val, test, text, 50.0, heads, params, KS, 2, 2, **kw)


def strip(rows, *keys):
    return [{k: v for k, v in r.items() if k not in keys} for r in rows]


def test_the_plan_fits_deterministic_heads_once_at_all():
    plan = fit_plan(["gda", "mlp"], [1, "all"], seeds=3)
    assert plan.count((1, 0, "gda")) == 1 and len([t for t in plan if t[0] == 1]) == 6
    assert [t for t in plan if t[0] == "all"] == [("all", 0, "gda"), ("all", 0, "mlp"), ("all", 1, "mlp"),
                                                 ("all", 2, "mlp")]


def test_the_same_curve_from_one_process_and_from_two(world):
    one, two = curve(world, workers=1), curve(world, workers=2)
    assert strip(one, "seconds") == strip(two, "seconds") and len(one) == len(fit_plan(HEADS, KS, 2)) + 3
    assert fit_processes(8, n_fits=3) == 3 and fit_processes(0, 10) == 1 and fit_processes("auto", 1) == 1


def test_ranked_draws_are_stratified_nested_and_stable():
    labels = np.repeat(np.arange(3), [30, 10, 2])
    ids = [f"img{i}" for i in range(len(labels))]
    keys = rank_keys(ids, seed=0)
    tr, va = draw_ranked(labels, keys, 8, 4)
    assert not set(tr) & set(va)
    assert np.bincount(labels[tr]).tolist() == [8, 8, 1] and np.bincount(labels[va]).tolist() == [4, 2, 1]
    tr4, _ = draw_ranked(labels, keys, 4, 4)
    assert set(tr4) <= set(tr)  # one seed's k-shot sets are nested
    assert not np.array_equal(rank_keys(ids, 1), keys)  # another seed, another order
    # the ranks are the images' own: the same images in another order draw the same images
    perm = np.random.default_rng(0).permutation(len(ids))
    tr_p, va_p = draw_ranked(labels[perm], rank_keys([ids[i] for i in perm], 0), 8, 4)
    assert sorted(perm[tr_p]) == sorted(tr) and sorted(perm[va_p]) == sorted(va)
    # a photo added to class 0 leaves the other classes' draws as they were
    labels2, ids2 = np.append(labels, 0), [*ids, "new.jpg"]
    tr2, va2 = draw_ranked(labels2, rank_keys(ids2, 0), 8, 4)
    for c in (1, 2):
        assert sorted(i for i in tr2 if labels2[i] == c) == sorted(i for i in tr if labels[i] == c)


def test_a_warm_fit_cache_gives_the_curve_of_fresh_fits_without_fitting(world, tmp_path):
    cache = FitCache(tmp_path / "fits")
    fresh = curve(world)
    first = curve(world, cache=cache)
    again = curve(world, cache=cache, workers=2)
    assert not any(r["cached"] for r in first) and all(r["cached"] for r in again if r["head"] != "zero-shot")
    assert strip(first, "seconds") == strip(fresh, "seconds")
    assert strip(again, "cached") == strip(first, "cached")  # the same rows, first-fit seconds included
    # an unreadable entry is fitted again and rewritten
    entry = next((tmp_path / "fits").glob("*/*.json"))
    entry.write_text("{not json")
    third = curve(world, cache=cache)
    assert sum(not r["cached"] for r in third if r["head"] != "zero-shot") == 1
    assert strip(third, "seconds", "cached") == strip(first, "seconds", "cached")
    assert sum(not r["cached"] for r in curve(world, cache=cache) if r["head"] != "zero-shot") == 0


def test_only_what_changed_is_fitted_again(world, tmp_path, monkeypatch):
    cache = FitCache(tmp_path / "fits")
    curve(world, cache=cache)

    def fitted(rows):
        return {(r["head"], r["k"], r["seed"]) for r in rows if r["head"] != "zero-shot" and not r["cached"]}

    # one head's params: only that head
    changed = fitted(curve(world, params={**PARAMS, "mlp": {"epochs": 6}}, cache=cache))
    assert changed == {(h, str(k), s) for k, s, h in fit_plan(HEADS, KS, 2) if h == "mlp"}
    # photos added to one class: the draws they enter, and "all"
    tr = world[0]
    extra = blobs(3, 9, "added")
    keep = extra.labels == 0
    grown = FeatureSet(np.concatenate([tr.features, extra.features[keep]]), np.concatenate([tr.labels, extra.labels[keep]]),
                       tr.classes, [*tr.paths, *np.array(extra.paths)[keep]], "toy", "0" * 64)
    pool_y = np.concatenate([grown.labels, world[1].labels])
    pool_ids = [*grown.paths, *world[1].paths]
    new = {i for i, name in enumerate(pool_ids) if name.startswith("added/")}
    entered = set()
    for seed in range(2):
        for k in (1, 2):
            t, v = draw_ranked(pool_y, rank_keys(pool_ids, seed), k, 2)
            if new & {*t, *v}:
                entered |= {(h, str(k), seed) for h in HEADS}
    changed = fitted(curve(world, train=grown, cache=cache))
    at_all = {(h, "all", s) for k, s, h in fit_plan(HEADS, KS, 2) if k == "all"}
    assert changed == entered | at_all and len(changed) < len(fit_plan(HEADS, KS, 2))
    # other code (an edited head, another library version): every fit again
    monkeypatch.setattr(shots, "code_version", lambda: "edited")
    assert len(fitted(curve(world, cache=cache))) == len(fit_plan(HEADS, KS, 2))


def test_one_thread_reaches_the_pools_that_fitting_loads_later():
    """In a fresh interpreter (scikit-learn not imported yet): `one_thread(fit_imports(...))`
    imports the heads' libraries first, so SciPy's own OpenBLAS and scikit-learn's OpenMP run
    one thread too, not only the pools loaded before it."""
    import json
    import subprocess
    import sys

    code = """
import json, torch
from threadpoolctl import threadpool_info
from fewclip.heads import fit_imports, one_thread
before = torch.get_num_threads()
with one_thread(fit_imports(["linear", "gda", "mlp"])):
    pools = [(p["internal_api"], p["filepath"], p["num_threads"]) for p in threadpool_info()]
    inside = torch.get_num_threads()
print(json.dumps({"pools": pools, "inside": inside, "restored": torch.get_num_threads() == before}))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout.splitlines()[-1])
    assert out["inside"] == 1 and out["restored"]
    assert any("scipy_openblas" in path and "64" not in path for _, path, _ in out["pools"])  # SciPy's own
    assert all(n == 1 for _, _, n in out["pools"]), out["pools"]
