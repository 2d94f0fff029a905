"""`fewclip.shots`: the fit plan, and a curve that does not depend on how many processes fit it."""

from fewclip.heads import one_thread
from fewclip.shots import Features, fit_plan, resolve_workers, shots_curve
from synthetic import feature_blobs


def blobs(n_per_class, seed):
    return Features(*feature_blobs(n_per_class, seed, classes=4, dim=16))


def test_the_plan_fits_deterministic_heads_once_at_all():
    plan = fit_plan(["gda", "mlp"], [1, "all"], seeds=3)
    assert plan.count((1, 0, "gda")) == 1 and len([t for t in plan if t[0] == 1]) == 6
    assert [t for t in plan if t[0] == "all"] == [("all", 0, "gda"), ("all", 0, "mlp"), ("all", 1, "mlp"),
                                                 ("all", 2, "mlp")]


def test_the_same_curve_from_one_process_and_from_two():
    train, val, test = blobs(8, 1), blobs(3, 2), blobs(10, 3)
    text = blobs(1, 4).x
    params = {"mlp": {"epochs": 5}, "gda": None, "ncm": None}
    args = (train, val, test, text, 50.0, ["gda", "mlp", "ncm"], params, [1, 2, "all"], 2, 2)
    with one_thread():
        one = shots_curve(*args, workers=1)
        two = shots_curve(*args, workers=2)
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in rows] for rows in (one, two)]
    assert strip[0] == strip[1] and len(one) == len(fit_plan(["gda", "mlp", "ncm"], [1, 2, "all"], 2)) + 3
    assert resolve_workers(8, n_fits=3) == 3 and resolve_workers(0, 10) == 1 and resolve_workers("auto", 1) == 1
