"""Stage embed: L2-normalised CLIP features of every listed image and of every class name
(the work: `fewclip.featurize`).

Reads <splits>/*.csv, writes <out>/{train,val,test,zero_shot}.npz, <out>/text.npz and
<out>/summary.json (the format: fewclip/features.py). Features come
from the per-image feature cache where it has them; the backbone is loaded only when an
image or a class's prompts are not cached yet.
"""

import json
import sys
import time

from fewclip.backbone import LazyBackbone
from fewclip.cache import FeatureCache, NoCache, pixels_identity
from fewclip.decode import resolve_decode
from fewclip.embedding import resolve_workers
from fewclip.featurize import embed_split, embed_text
from fewclip.features import save_features, save_text
from fewclip.pipeline.params import load_params
from fewclip.pipeline.runner import run, stage_paths
from fewclip.splits import read_list

SPLITS = ("train", "val", "test", "zero_shot")


def main() -> None:
    splits, out = stage_paths("SPLITS OUT")
    p = load_params()
    e = p["embed"]
    info = json.loads((splits / "summary.json").read_text(encoding="utf-8"))
    classes, novel = info["classes"], info["novel_classes"]

    start = time.perf_counter()
    backbone = LazyBackbone(p["model"], device=e["device"], download_root=e["cache_dir"], remote=e["engine"] == "ray",
                            precision=e["precision"])
    workers = resolve_workers(e["num_workers"], backbone.device)
    decode = resolve_decode(e["decode"], backbone.device, lambda: backbone.resize)
    if e["feature_cache"]:
        # Ray's actors decode on the CPU path, whatever this machine would do
        route = "cpu" if e["engine"] == "ray" else decode
        cache = FeatureCache(e["feature_cache"], backbone.sha256, backbone.precision_key,
                             pixels_identity(route, backbone.family, backbone.libraries))
        stale = cache.prune_temp() if cache.dir.is_dir() else 0
        cache.touch()
        print(f"embed: feature cache {cache.dir}"
              + (f" (removed {stale} partial entries of a killed run)" if stale else ""))
    else:
        cache = NoCache()
    summary = {"model": p["model"], "model_sha256": backbone.sha256, "precision": backbone.precision, "images": {},
               "skipped": {}, "cache": {}, "decoded": {}}
    dim = None
    for split in SPLITS:
        rows = read_list(splits / f"{split}.csv")
        done = embed_split(backbone, rows, novel if split == "zero_shot" else classes, cache,
                           batch_size=e["batch_size"], workers=workers, decode=decode, engine=e["engine"],
                           address=e["ray_address"], desc=split, dim=dim, trained=split == "train",
                           skipped=lambda path, err: print(f"  skipped {path}: {err}", file=sys.stderr))
        dim, stats, bad = done.features.features.shape[1], done.stats, done.skipped
        save_features(out / f"{split}.npz", done.features)
        summary["images"][split] = len(done.features.labels)
        summary["skipped"][split] = bad
        summary["cache"][split] = {"cached": stats.cached, "embedded": stats.embedded}
        summary["decoded"][split] = dict(stats.routes)
        print(f"embed: {split}: {len(done.features.labels)} images ({stats.embedded} embedded, {stats.cached} from "
              f"cache) in {done.seconds:.1f}s" + (f", skipped {len(bad)} that could not be decoded" if bad else "")
              + (f"; decoded: {stats.routes.describe()}" if decode == "gpu" and stats.embedded else ""))

    prompts = p["classes"]["prompts"]
    unused = sorted(set(prompts) - set(classes) - set(novel))
    if unused:
        print(f"warning: params.yaml classes.prompts names {unused}, neither trained nor novel: not used",
              file=sys.stderr)
    save_text(out / "text.npz", embed_text(backbone, classes + novel, e["templates"], prompts, cache))
    summary["backbone_loaded"] = backbone.loaded is not None
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    how = (f"{p['model']} on {backbone.device} at {backbone.precision} loaded in {backbone.load_seconds:.1f}s" if backbone.loaded
           else f"{p['model']} not loaded: every image and class text was in the feature cache")
    print(f"embed: done in {time.perf_counter() - start:.1f}s ({how}, sha256 {backbone.sha256[:12]}) -> {out}/")


if __name__ == "__main__":
    run(main)
