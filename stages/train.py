"""Stage train: fit the few-shot head (mode: few) or set up the zero-shot classifier (mode:
zero) (the work: `fewclip.training.train_classifier`).

Writes the trained artefact <model_out> (head, class names, text features and templates,
backbone identity) and logs per-epoch train/validation accuracy and loss with dvclive into
<live_dir>: epoch 0 is zero-shot CLIP, then every epoch of a head that trains in epochs (mlp,
tip-adapter-f, zs-linear), or the one step of a closed-form head (gda, linear, ncm,
tip-adapter). In zero mode only epoch 0. What the head chose and did goes to the summary
(`metrics/train/metrics.json`), not a DVC metric: evaluate reports the headline figures.
"""

from dvclive import Live

from fewclip.features import load_features, load_text
from fewclip.openvocab import save_classifier
from fewclip.pipeline.heads_schema import declared_heads
from fewclip.pipeline.params import load_params
from fewclip.pipeline.runner import run, stage_paths
from fewclip.training import train_classifier


def main() -> None:
    features, model_out, live_dir = stage_paths("FEATURES CLASSIFIER_OUT LIVE_DIR")
    p = load_params(heads=declared_heads())
    mode = p["mode"]
    train, val = load_features(features / "train.npz"), load_features(features / "val.npz")
    text = load_text(features / "text.npz")
    classes = train.classes

    with Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False) as live:
        def log_epoch(epoch: int, metrics: dict) -> None:
            for name, value in metrics.items():
                live.log_metric(name, value)
            live.next_step()

        head, info = train_classifier(mode, p["head"], p["heads"][p["head"]], p["seed"], train, val,
                                      text.rows_for(classes, features / "text.npz"), text.logit_scale, log_epoch)
        live.summary.update({k: v for k, v in info.items() if k != "val_acc"})

    save_classifier(model_out, mode, head, classes, text, p["gzsl"]["seen_bias"])
    if mode == "zero":
        what = f"train: zero-shot CLIP, no training: the class names' text features over {len(classes)} classes"
    else:
        best = info.get("best_epoch")
        what = (f"train: few-shot {head.name} head on {len(train.labels)} images, {len(classes)} classes"
                + (f"; best epoch {best} of {info['epochs_run']}" if best else "")
                + "".join(f"; {k}={v}" for k, v in info.get("chosen", {}).items()))
        if info["kept_zero_shot"]:
            what += ("; it kept zero-shot CLIP (no candidate beat it on the validation photos), so the "
                     "training photos change no prediction")
    print(what + (f"; validation accuracy {info['val_acc']:.3f}" if "val_acc" in info else "") + f" -> {model_out}")


if __name__ == "__main__":
    run(main)
