"""Stage suggest: which photos of `data.pool_dir` to label next (the work:
`python -m fewclip.suggest`, `fewclip.suggest_cli.main`).

Writes <out_csv> (path,predicted,probability,reason, in the order to label them) and the
contact sheet <sheet>. With `data.pool_dir: null` both say there is no pool.
"""

from pathlib import Path

from fewclip import UserError
from fewclip.pipeline.params import load_params
from fewclip.pipeline.runner import run, stage_paths
from fewclip.plots import contact_sheet


def main() -> None:
    features, classifier, out_csv, sheet = stage_paths("FEATURES CLASSIFIER OUT_CSV SHEET")
    p = load_params()
    pool, e = p["data"]["pool_dir"], p["embed"]
    if pool is None:
        out_csv.parent.mkdir(parents=True, exist_ok=True)
        out_csv.write_text("path,predicted,probability,reason\n")
        contact_sheet([], sheet, "No pool of unlabelled photos (params.yaml: data.pool_dir is null).")
        print("suggest: data.pool_dir is null: no pool to rank")
        return
    from fewclip.suggest_cli import main as suggest  # torch and the backbone: only with a pool

    if not Path(pool).is_dir():
        raise UserError(f"params.yaml: data.pool_dir={pool!r}: no such folder")
    suggest([pool, "--n", str(p["suggest"]["n"]), "--classifier", str(classifier), "--features", str(features),
             "--out", str(out_csv), "--contact-sheet", str(sheet), "--model", p["model"],
             "--feature-cache", e["feature_cache"] or "", "--cache-dir", e["cache_dir"],
             "--batch-size", str(e["batch_size"]), "--device", e["device"], "--seed", str(p["seed"])])


if __name__ == "__main__":
    run(main)
