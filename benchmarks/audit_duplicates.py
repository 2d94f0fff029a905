"""Near-duplicate threshold: altered copies of the reference photos against distinct photos.

Each of a sample of the reference photos (`../shared/datasets/vehicles`) is copied altered:
resized to 50-100%, re-encoded as JPEG at quality 50-95, cropped by up to 10% (5% a side),
mirrored, and all of these at once. The copies and every reference photo are embedded with
each backbone: random weights of the full ViT-B/32 architecture, and the tiny CLIP the tests
train (tests/synthetic.py, about a minute). Prints, per backbone, the lowest similarity of a
copy to its original, the highest similarity between two distinct reference photos (the
pairs cropped from one COCO photograph named apart), the same for the pixel fingerprints,
and what `fewclip.audit.find_duplicates` (its defaults) makes of every reference photo and
every copy: copies found with their original, and every distinct pair it calls a duplicate.

    python benchmarks/audit_duplicates.py [--photos 60] [--data ../shared/datasets/vehicles]
"""

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fewclip.audit.duplicates import Photos, find_duplicates  # noqa: E402
from fewclip.audit.fingerprint import PIXEL_DUPLICATE  # noqa: E402
from fewclip.cache import file_sha256  # noqa: E402
from fewclip.backbone import load_backbone  # noqa: E402
from fewclip.data import scan_folder  # noqa: E402
from fewclip.embedding import embed_images  # noqa: E402


def alterations(img: Image.Image) -> dict:
    w, h = img.size

    def crop(f):
        dx, dy = int(w * f / 2), int(h * f / 2)
        return img.crop((dx, dy, w - dx, h - dy))

    return {"resize50": (img.resize((max(1, w // 2), max(1, h // 2))), 95),
            "resize75": (img.resize((max(1, w * 3 // 4), max(1, h * 3 // 4))), 95),
            "jpeg50": (img, 50), "jpeg75": (img, 75), "jpeg95": (img, 95),
            "crop5": (crop(0.05), 95), "crop10": (crop(0.10), 95),
            "mirror": (ImageOps.mirror(img), 95),
            "all": (ImageOps.mirror(crop(0.10)).resize((max(1, int(w * 0.6)), max(1, int(h * 0.6)))), 60)}


def coco_id(path: str) -> str:
    return Path(path).name.split("_")[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "vehicles"))
    ap.add_argument("--photos", type=int, default=60)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    photos = []
    for split in ("few_shot/train", "few_shot/test", "zero_shot/test"):
        photos += [p for p, _ in scan_folder(Path(args.data) / split).samples]
    photos = sorted(photos)
    sample = random.Random(0).sample(photos, min(args.photos, len(photos)))
    tmp = Path(tempfile.mkdtemp(prefix="dups-"))
    copies, origin, kinds = [], [], []
    for i, path in enumerate(sample):
        img = Image.open(path).convert("RGB")
        for name, (altered, quality) in alterations(img).items():
            out = tmp / f"{i:03d}_{name}.jpg"
            altered.save(out, quality=quality)
            copies.append(str(out))
            origin.append(photos.index(path))
            kinds.append(name)

    import random_checkpoint
    import synthetic

    backbones = {"random ViT-B/32": str(random_checkpoint.save_state_dict(random_checkpoint.random_clip("ViT-B/32"),
                                                                       tmp / "vit-b-32.pt")),
                 "tiny CLIP": str(synthetic.save_checkpoint(synthetic.train_tiny_clip(steps=300, seed=0),
                                                             tmp / "tiny.pt"))}
    from fewclip.audit.fingerprint import fingerprints, pixel_similarity

    full, var, _ = fingerprints(photos + copies)
    Pf, Pv, Cf, Cv = full[: len(photos)], var[: len(photos)], full[len(photos):], var[len(photos):]
    pix_copy = np.array([pixel_similarity(Cf[i:i + 1], Cv[i:i + 1], Pf[o:o + 1], Pv[o:o + 1])[0, 0]
                         for i, o in enumerate(origin)])
    pix_distinct = pixel_similarity(Pf, Pv, Pf, Pv)
    np.fill_diagonal(pix_distinct, -np.inf)
    kinds_arr = np.array(kinds)
    results = {"pixel": {"copy_min": float(pix_copy.min()), "distinct_max": float(pix_distinct.max()),
                         "copy_min_by_kind": {k: float(pix_copy[kinds_arr == k].min()) for k in dict.fromkeys(kinds)}}}
    print(f"pixel fingerprints: lowest copy-original similarity {pix_copy.min():.3f} ("
          + ", ".join(f"{k} {v:.3f}" for k, v in results["pixel"]["copy_min_by_kind"].items())
          + f"); highest of two distinct photos {pix_distinct.max():.3f}; threshold {PIXEL_DUPLICATE}")
    labels = [Path(p).parent.name for p in photos]
    for label, ckpt in backbones.items():
        bb = load_backbone(ckpt, device="cpu")
        F, err = embed_images(bb, photos + copies, 64, 0, desc=label, progress=False)
        assert not any(err), [e for e in err if e]
        P, Cp = F[: len(photos)], F[len(photos):]
        copy_sim = (Cp * P[origin]).sum(1)
        S = P @ P.T
        np.fill_diagonal(S, -np.inf)
        i, j = np.unravel_index(np.argsort(-S, axis=None)[:10], S.shape)
        top = [(photos[a], photos[b], float(S[a, b])) for a, b in zip(i, j) if a < b]
        groups = {"train": Photos(P, photos, labels, Pf, Pv, [file_sha256(p) for p in photos]),
                  "test": Photos(Cp, copies, [labels[o] for o in origin], Cf, Cv, [file_sha256(c) for c in copies])}
        found, floor = find_duplicates(groups)
        hit = {d.path: d for d in found if d.where == "train-test"}
        missed = [c for c, o in zip(copies, origin) if c not in hit or hit[c].duplicate_of != photos[o]]
        false_pos = [(d.path, d.duplicate_of, d.similarity) for d in found if d.where == "train"]
        results[label] = {"feature_copy_min": float(copy_sim.min()), "feature_distinct_max": float(S.max()),
                          "feature_threshold": floor, "missed": len(missed), "false_positives": false_pos}
        print(f"\n{label}: {len(copies)} copies of {len(sample)} photos, {len(photos)} distinct photos")
        print(f"  features: lowest copy-original similarity {copy_sim.min():.4f}, highest of two distinct photos "
              f"{S.max():.4f}; top distinct pairs:")
        for a, b, sim in top[:3]:
            same = " (crops of one COCO photograph)" if coco_id(a) == coco_id(b) else ""
            print(f"    {sim:.4f}  {Path(a).name}  {Path(b).name}{same}")
        print(f"  find_duplicates (pixel {PIXEL_DUPLICATE}, feature threshold used {floor:.4f}): "
              f"{len(copies) - len(missed)} of {len(copies)} copies found with their original; "
              f"{len(false_pos)} pairs of distinct reference photos called duplicates"
              + "".join(f"\n    false positive: {a} ~ {b} ({sim})" for a, b, sim in false_pos))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
