"""Stage train: fit the few-shot head (mode: few) or set up the zero-shot classifier (mode: zero).

Writes the trained artefact <model_out> (head, class names, text features and templates,
backbone identity) and logs per-epoch train/validation accuracy and loss with dvclive into
<live_dir>: epoch 0 is zero-shot CLIP (the text prior, before any training photo is used),
then every epoch of a head that trains in epochs (mlp, tip-adapter-f, zs-linear), or the one
step of a closed-form head (gda, linear, ncm, tip-adapter). In zero mode only epoch 0.
"""


import numpy as np
from dvclive import Live

from fewclip.features import load_features, load_text
from fewclip.heads import HEADS, ZeroShotHead, fit_imports, make_head, one_thread
from fewclip.openvocab import save_classifier
from fewclip.pipeline.params import load_params
from fewclip.pipeline.runner import run, stage_paths


def accuracy_and_loss(head, *splits) -> dict:
    """{"train/acc", "train/loss", "val/acc", "val/loss"} of a fitted head (cross-entropy of
    its probabilities); a split without images is left out."""
    out = {}
    for name, fs in zip(("train", "val"), splits):
        if len(fs.labels):
            proba = head.predict_proba(fs.features)
            out[f"{name}/acc"] = float((proba.argmax(1) == fs.labels).mean())
            out[f"{name}/loss"] = float(-np.log(np.clip(proba[np.arange(len(fs.labels)), fs.labels], 1e-12, None)).mean())
    return out


def main() -> None:
    features, model_out, live_dir = stage_paths("FEATURES CLASSIFIER_OUT LIVE_DIR")
    p = load_params(heads=HEADS)
    mode = p["mode"]
    train, val = load_features(features / "train.npz"), load_features(features / "val.npz")
    text = load_text(features / "text.npz")
    classes = train.classes
    text_features = text.rows_for(classes, features / "text.npz")

    # one thread, as the shots stage fits the same heads: the same numbers from both
    with Live(dir=live_dir, dvcyaml=False, save_dvc_exp=False) as live, one_thread(fit_imports([p["head"]])):
        def log_epoch(epoch: int, metrics: dict) -> None:
            for name, value in metrics.items():
                live.log_metric(name, value)
            live.next_step()

        # Epoch 0 of every curve is zero-shot CLIP, the classifier before any training photo.
        head = ZeroShotHead(text_features, text.logit_scale)
        log_epoch(0, accuracy_and_loss(head, train, val))
        if mode == "few":
            head = make_head(p["head"], p["heads"][p["head"]], text_features=text_features,
                             logit_scale=text.logit_scale, seed=p["seed"])
            head.fit(train.features, train.labels, val.features, val.labels,
                     n_classes=len(classes), on_epoch=log_epoch)
            if not (head.trains_in_epochs and head.history_):  # a closed-form head: its one step
                log_epoch(1, accuracy_and_loss(head, train, val))
        # Not a DVC metric (the evaluate stage reports the headline figures): what the head
        # chose on the validation features, for `metrics/train/metrics.json` readers.
        if len(val.labels):
            val_acc = float((head.predict_proba(val.features).argmax(1) == val.labels).mean())
        best_epoch = getattr(head, "best_epoch_", None)
        if best_epoch:
            live.summary["best_epoch"] = best_epoch
        if head.trains_in_epochs and head.history_:
            live.summary["epochs_run"] = len(head.history_)
        chosen = head.chosen()
        if chosen:
            live.summary["chosen"] = chosen
        live.summary["kept_zero_shot"] = head.kept_zero_shot()

    save_classifier(model_out, mode, head, classes, text, p["gzsl"]["seen_bias"])
    if mode == "zero":
        what = f"train: zero-shot CLIP, no training: the class names' text features over {len(classes)} classes"
    else:
        what = (f"train: few-shot {head.name} head on {len(train.labels)} images, {len(classes)} classes"
                + (f"; best epoch {best_epoch} of {len(head.history_)}" if best_epoch else "")
                + "".join(f"; {k}={v}" for k, v in chosen.items()))
        if head.kept_zero_shot():
            what += ("; it kept zero-shot CLIP (no candidate beat it on the validation photos), so the "
                     "training photos change no prediction")
    print(what + (f"; validation accuracy {val_acc:.3f}" if len(val.labels) else "") + f" -> {model_out}")

if __name__ == "__main__":
    run(main)
