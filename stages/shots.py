"""Stage shots: test accuracy versus shots per class for every head, over several seeds.

Writes <out>/metrics.json ({head: {k: mean, std, shots, seconds}}), <out>/curves/<head>.csv
(one line per head for `dvc plots`) and <png>.
"""

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fewclip import UserError
from fewclip.features import load_features
from fewclip.heads import HEADS
from fewclip.params import load_params, run
from fewclip.plots import model_label, shots_curve_png
from fewclip.shots import Features, shots_curve, summarize


def main() -> None:
    features = Path(sys.argv[1] if len(sys.argv) > 1 else "features")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "metrics/shots")
    png = Path(sys.argv[3] if len(sys.argv) > 3 else "plots/shots.png")
    p = load_params()
    cfg = p["shots"]
    unknown = [h for h in cfg["heads"] if h not in HEADS]
    if unknown:
        raise UserError(f"params.yaml: shots.heads: {unknown} are not heads ({', '.join(HEADS)})")
    bad_k = [k for k in cfg["ks"] if k != "all" and not (isinstance(k, int) and k > 0)]
    if bad_k:
        raise UserError(f"params.yaml: shots.ks: {bad_k} are neither positive integers nor 'all'")
    sets = {s: load_features(features / f"{s}.npz") for s in ("train", "val", "test")}
    with np.load(features / "text.npz", allow_pickle=False) as z:
        n = len(sets["train"].classes)
        text, logit_scale = z["features"][:n], float(z["logit_scale"])
    train, val, test = (Features(s.features, s.labels) for s in sets.values())

    start = time.perf_counter()
    total = len(cfg["ks"]) * cfg["seeds"] * len(cfg["heads"])
    with tqdm(total=total, desc="shots", unit="fit", leave=False) as bar:
        rows = shots_curve(train, val, test, text, logit_scale, cfg["heads"], p.get("heads") or {},
                           cfg["ks"], cfg["seeds"], cfg["val_per_class"], p["sampler"], progress=bar.update)
    seconds = time.perf_counter() - start
    summary = summarize(rows)

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(
        {"seconds": round(seconds, 2), "heads": summary}, indent=2) + "\n")
    (out / "curves").mkdir(exist_ok=True)
    for head, by_k in summary.items():
        with open(out / "curves" / f"{head}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["k", "shots", "acc", "std"])
            for k, v in by_k.items():
                writer.writerow([k, round(v["shots"], 3), round(v["mean"], 5), round(v["std"], 5)])
    shots_curve_png(summary, png, f"{model_label(sets['test'].model)}: test accuracy vs shots ({cfg['seeds']} seeds)")

    ks = [str(k) for k in cfg["ks"]]
    print(f"{'head':<14}" + "".join(f"{k:>14}" for k in ks))
    for head, by_k in summary.items():
        print(f"{head:<14}" + "".join(f"{by_k[k]['mean']:>8.3f}±{by_k[k]['std']:.3f}" for k in ks))
    print(f"shots: {len(rows)} fits in {seconds:.1f}s -> {out}/, {png}")


if __name__ == "__main__":
    run(main)
