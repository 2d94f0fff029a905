"""Stage train: fit the few-shot head (mode: few) or set up the zero-shot classifier (mode: zero).

Writes the trained artefact <model_out> (head, class names, prompts, backbone identity) and
logs per-epoch train/validation accuracy and loss with dvclive into <live_dir>.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from dvclive import Live

from fewclip import UserError
from fewclip.features import load_features
from fewclip.heads import ZeroShotHead, make_head, save_head
from fewclip.params import choice, load_params, run
from fewclip.prompts import class_prompts


def main() -> None:
    features = Path(sys.argv[1] if len(sys.argv) > 1 else "features")
    model_out = Path(sys.argv[2] if len(sys.argv) > 2 else "models/classifier.pt")
    live_dir = sys.argv[3] if len(sys.argv) > 3 else "metrics/train"
    p = load_params()
    mode = choice(p, "mode", ("few", "zero"))
    train, val = load_features(features / "train.npz"), load_features(features / "val.npz")
    with np.load(features / "text.npz", allow_pickle=False) as z:
        text = {k: z[k] for k in z.files}
    classes = train.classes
    if [str(c) for c in text["classes"][: len(classes)]] != classes:
        raise UserError(f"{features}/text.npz does not match {features}/train.npz; rerun `dvc repro embed`")
    text_features = text["features"][: len(classes)]

    with Live(dir=live_dir, dvcyaml=False, save_dvc_exp=False) as live:
        if mode == "zero":
            head = ZeroShotHead(text_features, float(text["logit_scale"]))
        else:
            head = make_head(p["head"], (p.get("heads") or {}).get(p["head"]), text_features=text_features,
                             logit_scale=float(text["logit_scale"]), sampler=p["sampler"], seed=p["seed"])

            def log_epoch(epoch: int, metrics: dict) -> None:
                for name, value in metrics.items():
                    live.log_metric(name, value)
                live.next_step()

            head.fit(train.features, train.labels, val.features, val.labels,
                     n_classes=len(classes), on_epoch=log_epoch)
        if len(val.labels):
            val_acc = float((head.predict_proba(val.features).argmax(1) == val.labels).mean())
            live.summary["best_val_acc" if mode == "few" else "val_acc"] = val_acc
        if getattr(head, "best_epoch_", None):
            live.summary["best_epoch"] = head.best_epoch_
        if getattr(head, "history_", None):
            live.summary["epochs_run"] = len(head.history_)
        # the hyper-parameters the head chose on the validation features
        chosen = {k: head.get_params()[k] for k in getattr(head, "chosen_on_validation", ())}
        if chosen:
            live.summary["chosen"] = chosen
        live.summary["mode"] = mode
        live.summary["head"] = head.name

    model_out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"mode": mode, "head": save_head(head), "classes": classes,
                "text_features": torch.from_numpy(text["features"]),
                "text_classes": [str(c) for c in text["classes"]],
                "templates": [str(t) for t in text["templates"]],
                "prompts": class_prompts([str(c) for c in text["classes"]], (p.get("classes") or {}).get("prompts")),
                "seen_bias": float((p.get("gzsl") or {}).get("seen_bias", 0.0)),
                "logit_scale": float(text["logit_scale"]),
                "model": train.model, "model_sha256": train.model_sha256}, model_out)
    print(f"train: {mode}-shot {head.name} head on {len(train.labels)} images, {len(classes)} classes"
          + (f"; best epoch {head.best_epoch_} of {len(head.history_)}" if getattr(head, "best_epoch_", None) else "")
          + "".join(f"; {k}={v}" for k, v in chosen.items())
          + (f"; validation accuracy {val_acc:.3f}" if len(val.labels) else "") + f" -> {model_out}")


if __name__ == "__main__":
    run(main)
