"""Digests of every head's `predict_proba` on real CLIP features, to show that a refactor
changed no number: run it on two checkouts and compare the output.

    PYTHONPATH=/path/to/old/checkout python benchmarks/heads_identical.py ../shared/datasets/clip-features > old.json
    python benchmarks/heads_identical.py ../shared/datasets/clip-features > new.json && diff old.json new.json

The task: the 24 Oxford Pets classes that have an ImageNet class name (ViT-B/32 features),
with their ImageNet text features as the prior and without, at 1, 4 and 16 shots (seed 1;
validation: 200 images of the official validation split). Each head is fitted, its
probabilities on the test images hashed (SHA-256 of the float32 bytes), then saved and
loaded (`save_head` / `load_head`) and hashed again. Uses only `fewclip.heads`' public API,
which older checkouts share.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from fewclip.heads import HEADS, load_head, make_head, one_thread, save_head


def pets24(folder: Path):
    mapping = json.loads((folder / "oxford_pets_to_imagenet.json").read_text())["pets_to_imagenet"]
    pairs = sorted((m["pets_label"], m["imagenet_index"]) for m in mapping.values())
    new = np.full(1000, -1)
    for i, (label, _) in enumerate(pairs):
        new[label] = i
    with np.load(folder / "imagenet_text_weights.npz") as z:
        text = np.ascontiguousarray(z["vitb32"].T[[idx for _, idx in pairs]], dtype=np.float32)

    def subset(x, y):
        keep = new[y] >= 0
        return np.ascontiguousarray(x[keep], dtype=np.float32), new[y[keep]].astype(np.int64)

    with np.load(folder / "vitb32_oxford_pets.npz") as z:
        shots = {k: subset(z[f"train{k}_x"], z[f"train{k}_y"]) for k in (1, 4, 16)}
        val = subset(z["val_x"], z["val_y"])
        test = subset(z["test_x"], z["test_y"])
    return shots, (val[0][:200], val[1][:200]), test, text, len(pairs)


def digest(proba: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(proba, dtype=np.float32).tobytes()).hexdigest()[:16]


def main() -> None:
    shots, (xv, yv), (xt, _), text, n = pets24(Path(sys.argv[1]))
    out = {}
    with one_thread():
        for name in HEADS:
            for prior in ("text", "no-text"):
                tf = text if prior == "text" else None
                for k, (x, y) in shots.items():
                    head = make_head(name, {}, text_features=tf, logit_scale=100.0, seed=1)
                    head.fit(x, y, xv, yv, n_classes=n)
                    again = load_head(save_head(head))
                    out[f"{name} {prior} k{k}"] = [digest(head.predict_proba(xt)), digest(again.predict_proba(xt))]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
