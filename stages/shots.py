"""Stage shots: test accuracy versus shots per class for every head, over several seeds.

Writes <out>/curve.json (one record per head and shot count: mean and standard deviation
over seeds; the data of the interactive plot, and read by the evaluate stage for the
configured head's figures; a shot count that no class can fill is not fitted, its records
say `"as": "all"`), <out>/fits.csv (every fit: head, k, seed, accuracy, seconds, and
whether it came from the fit cache, `shots.fit_cache`, with the seconds of its first fit)
and <png>. None of it is a DVC metric: the table is too wide to compare experiments by.
"""

import csv
import json
import sys
import time

import numpy as np
from tqdm import tqdm

from fewclip.cache import FitCache
from fewclip.checks import shots_beyond
from fewclip.features import load_features, load_text
from fewclip.pipeline.heads_schema import declared_heads
from fewclip.pipeline.params import load_params
from fewclip.pipeline.runner import run, stage_paths
from fewclip.plots import model_label, shots_curve_png
from fewclip.shots import curve_records, fit_plan, fit_processes, shots_curve, summarize


class ForkSafeBar(tqdm):
    """A progress bar without tqdm's monitor thread: the fitting processes fork from this one."""

    monitor_interval = 0


def main() -> None:
    features, out, png = stage_paths("FEATURES OUT PNG")
    p = load_params(heads=declared_heads())
    cfg = p["shots"]
    sets = {s: load_features(features / f"{s}.npz") for s in ("train", "val", "test")}
    text_file = load_text(features / "text.npz")
    text, logit_scale = text_file.rows_for(sets["train"].classes, features / "text.npz"), text_file.logit_scale
    train, val, test = sets.values()
    cache = FitCache(cfg["fit_cache"]) if cfg["fit_cache"] else None
    # a shot count that no class can fill would repeat "all": not fitted, reported as "all"
    sizes = np.bincount(np.concatenate([train.labels, val.labels]))
    beyond = shots_beyond(cfg["ks"], [int(n) for n in sizes])
    ks = [k for k in cfg["ks"] if k not in beyond] or ["all"]
    if beyond:
        print(f"warning: shots.ks {beyond}: no class has that many photos (the largest has {sizes.max()}), so these "
              "shot counts would repeat the whole training split; reported as 'all', not fitted", file=sys.stderr)

    start = time.perf_counter()
    total = len(fit_plan(cfg["heads"], ks, cfg["seeds"]))
    with ForkSafeBar(total=total, desc="shots", unit="fit", leave=False) as bar:
        rows = shots_curve(train, val, test, text, logit_scale, cfg["heads"], p["heads"], ks, cfg["seeds"],
                           cfg["val_per_class"], progress=bar.update, workers=cfg["workers"], cache=cache)
    seconds = time.perf_counter() - start
    summary = summarize(rows)

    out.mkdir(parents=True, exist_ok=True)
    (out / "curve.json").write_text(json.dumps(curve_records(summary, beyond), indent=1) + "\n")
    with open(out / "fits.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["head", "k", "seed", "shots", "acc", "seconds", "cached"])
        for r in rows:
            writer.writerow([r["head"], r["k"], r["seed"], round(r["shots"], 3), round(r["acc"], 5),
                             round(r["seconds"], 3), int(r["cached"])])
    shots_curve_png(summary, png, f"{model_label(sets['test'].model)}: test accuracy vs shots ({cfg['seeds']} seeds)")

    shown = [str(k) for k in ks]
    print(f"{'head':<14}" + "".join(f"{k:>14}" for k in shown))
    for head, by_k in summary.items():
        print(f"{head:<14}" + "".join(f"{by_k[k]['mean']:>8.3f}±{by_k[k]['std']:.3f}" for k in shown))
    fits = [r for r in rows if r["head"] != "zero-shot"]
    fitted = sum(not r["cached"] for r in fits)
    workers = fit_processes(cfg["workers"], fitted)
    how = f", {fitted} fitted in {workers} process{'es' if workers > 1 else ''}" if fitted else ""
    print(f"shots: {len(fits)} fits in {seconds:.1f}s ({len(fits) - fitted} from the fit cache{how}) -> {out}/, {png}")


if __name__ == "__main__":
    run(main)
