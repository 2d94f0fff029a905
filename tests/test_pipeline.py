"""Smoke test: the real `dvc repro` and `dvc exp run` on a synthetic data set with the tiny CLIP."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import FOLDERS
from fewclip.heads import HEADS
from helpers import copy_repo, set_params, sh, truncated_jpeg
from synthetic import write_image_folder


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def repo(tiny_checkpoint_ts, tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("repo"))
    # The user's own photos in the reference layout under data/, pinned with `dvc add data`.
    data = repo / "data"
    write_image_folder(data / "few_shot" / "train", FOLDERS, 20, seed=10)
    write_image_folder(data / "few_shot" / "test", FOLDERS, 12, seed=11)
    write_image_folder(data / "zero_shot" / "test", ["blue circle"], 4, seed=12)
    # Messy input that must be used: grayscale, CMYK, RGBA, 16-bit, odd names.
    red = data / "few_shot" / "train" / "crimson_circle"
    Image.open(red / "000.jpg").convert("L").save(red / "gray.jpg")
    Image.open(red / "001.jpg").convert("CMYK").save(red / "cmyk.jpg")
    Image.open(red / "002.jpg").convert("RGBA").save(red / "rgba.png")
    Image.fromarray((np.asarray(Image.open(red / "003.jpg").convert("L"), dtype=np.uint16) * 257)).save(red / "deep 16-bit ü.png")
    # ... and junk that must be skipped and counted.
    (red / "@eaDir").mkdir()
    (red / "@eaDir" / "000.jpg@SynoEAStream").write_bytes(b"meta")
    (red / "notes.txt").write_text("not an image")
    (data / "few_shot" / "test" / "green_square" / "fake.jpg").write_text("a text file named .jpg")
    truncated_jpeg(data / "few_shot" / "test" / "green_square" / "cut.jpg")
    cache = tmp_path_factory.mktemp("feature-cache")
    set_params(repo, model=str(tiny_checkpoint_ts), head="mlp", **{"embed.num_workers": 1, "heads.mlp.epochs": 40,
                                                       "embed.feature_cache": str(cache),
                                                       "classes.novel": ["blue_circle"],
                                                       "classes.prompts": {"blue_circle": ["blue circle", "blue disc"]},
                                                       "shots.ks": [1, 16, "all"], "shots.seeds": 2})
    sh("dvc", "add", "data", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "synthetic setup", cwd=repo)
    first = sh("dvc", "repro", cwd=repo)
    return repo, first


def read_json(path):
    return json.loads(path.read_text())


def test_repro_runs_every_stage_and_reports_the_input(repo):
    repo, first = repo
    assert ran(first.stdout) == {"split", "embed", "train", "evaluate", "shots"}
    out = first.stdout + first.stderr
    # train: 120 drawn + 4 in other colour modes; the @eaDir entry and notes.txt skipped
    assert "train: 124 images in 6 classes; skipped 2 files (1 hidden or system entry, " \
           "1 not an image file (extension))" in out
    # test: fake.jpg fails the header check in split; cut.jpg's header is fine, its data is not
    assert "test: 73 images in 6 classes; skipped 1 file (1 not an image (unrecognised file content))" in out
    assert "notes.txt: not an image file (extension)" in out
    assert "fake.jpg: not an image (unrecognised file content)" in out
    assert "cut.jpg: cannot decode: image file is truncated" in out
    splits = read_json(repo / "splits" / "summary.json")
    assert splits["classes"] == sorted(FOLDERS)
    assert splits["novel_classes"] == ["blue_circle"]
    assert splits["images"]["train"] + splits["images"]["val"] == 124
    emb = read_json(repo / "features" / "summary.json")
    assert emb["images"]["test"] == 72 and [p for p, _ in emb["skipped"]["test"]][0].endswith("cut.jpg")


def test_features_follow_the_documented_format(repo):
    repo, _ = repo
    z = np.load(repo / "features" / "train.npz", allow_pickle=False)
    assert z["features"].dtype == np.float32 and z["features"].shape[1] == 64
    assert np.allclose(np.linalg.norm(z["features"], axis=1), 1, atol=1e-5)
    assert z["labels"].dtype == np.int64 and len(z["labels"]) == len(z["paths"]) == len(z["features"])
    assert list(z["classes"]) == sorted(FOLDERS)
    pool = [*z["paths"], *np.load(repo / "features" / "val.npz")["paths"]]
    assert sum(name in p for p in pool for name in ("gray.jpg", "cmyk.jpg", "rgba.png", "deep 16-bit ü.png")) == 4
    t = np.load(repo / "features" / "text.npz", allow_pickle=False)
    assert list(t["classes"]) == list(z["classes"]) + ["blue_circle"] and t["features"].shape == (7, 64)
    assert len(t["templates"]) >= 5 and float(t["logit_scale"]) > 1


def test_metrics_and_plots_hold_sane_values(repo):
    repo, _ = repo
    m = read_json(repo / "metrics" / "evaluate" / "metrics.json")["test"]
    assert m["acc"] > 0.6 and 0.6 < m["balanced_acc"] <= 1  # chance: 1/6
    assert set(m["per_class"]) == set(FOLDERS) and m["n_images"] == 72
    t = read_json(repo / "metrics" / "train" / "metrics.json")
    assert 1 <= t["best_epoch"] <= t["epochs_run"] <= 40 and t["best_val_acc"] > 0.5 and t["head"] == "mlp"
    acc = (repo / "metrics" / "train" / "plots" / "metrics" / "val" / "acc.tsv").read_text().splitlines()
    assert acc[0].split("\t") == ["step", "acc"] and len(acc) == t["epochs_run"] + 1
    cm = read_json(repo / "metrics" / "evaluate" / "plots" / "sklearn" / "confusion_matrix.json")
    assert len(cm) == 72 and set(cm[0]) == {"actual", "predicted"}
    assert (repo / "plots" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    shown = json.loads(sh("dvc", "metrics", "show", "--json", cwd=repo).stdout)
    assert shown  # DVC itself reads the declared metrics
    plots = sh("dvc", "plots", "show", "--json", cwd=repo).stdout
    assert "confusion_matrix" in plots and "acc.tsv" in plots


def test_nothing_reruns_and_train_params_do_not_re_embed(repo):
    repo, _ = repo
    again = sh("dvc", "repro", cwd=repo)
    assert ran(again.stdout) == set()
    before = (repo / "features" / "train.npz").read_bytes()
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "first run", cwd=repo)
    exp = sh("dvc", "exp", "run", "-S", "heads.mlp.lr=0.003", "-n", "lr3", cwd=repo)
    assert ran(exp.stdout) == {"train", "evaluate", "shots"}  # the curve uses the mlp settings too
    assert (repo / "features" / "train.npz").read_bytes() == before


def test_zero_shot_experiment_and_exp_show(repo):
    repo, _ = repo
    exp = sh("dvc", "exp", "run", "-S", "mode=zero", "-n", "zero", cwd=repo)
    assert ran(exp.stdout) == {"train", "evaluate"}
    m = read_json(repo / "metrics" / "evaluate" / "metrics.json")["test"]
    assert m["acc"] > 0.6
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    exps = {e["name"]: e["revs"][0]["data"] for rev in shown for e in (rev.get("experiments") or [])}
    assert {"lr3", "zero"} <= set(exps)
    for name, mode in (("lr3", "few"), ("zero", "zero")):
        assert exps[name]["params"]["params.yaml"]["data"]["mode"] == mode
        assert exps[name]["metrics"]["metrics/evaluate/metrics.json"]["data"]["test"]["acc"] > 0.6


def test_every_head_beats_zero_shot_at_16_shots(repo):
    """The shots stage of the real `dvc repro`: every head at 16 shots against zero-shot."""
    repo, _ = repo
    heads = read_json(repo / "metrics" / "shots" / "metrics.json")["heads"]
    zero_shot = heads.pop("zero-shot")["16"]["mean"]
    assert zero_shot < 0.95  # "crimson circle" is a name the tiny CLIP does not know
    assert set(heads) == set(HEADS)
    for name, by_k in heads.items():
        assert set(by_k) == {"1", "16", "all"} and by_k["16"]["seeds"] == 2 and by_k["16"]["shots"] == 16
        assert by_k["16"]["mean"] > zero_shot + 0.05, (name, by_k["16"], zero_shot)
    for name in [*HEADS, "zero-shot"]:
        rows = (repo / "metrics" / "shots" / "curves" / f"{name}.csv").read_text().splitlines()
        assert rows[0] == "k,shots,acc,std" and len(rows) == 4
    assert (repo / "plots" / "shots.png").read_bytes()[:4] == b"\x89PNG"


def test_every_head_through_train_and_evaluate(repo):
    """`dvc exp run -S head=...` for every head; each beats zero-shot on the test images."""
    repo, _ = repo
    others = [h for h in HEADS if h != "mlp"]  # mlp ran in the first `dvc repro`
    for head in others:
        exp = sh("dvc", "exp", "run", "-S", "mode=few", "-S", f"head={head}", "-n", head, cwd=repo)
        assert ran(exp.stdout) == {"train", "evaluate"}
        assert read_json(repo / "metrics" / "train" / "metrics.json")["head"] == head
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    acc = {e["name"]: e["revs"][0]["data"]["metrics"]["metrics/evaluate/metrics.json"]["data"]["test"]["acc"]
           for rev in shown for e in (rev.get("experiments") or [])}
    for head in others:
        assert acc[head] > acc["zero"] + 0.05, acc
    chosen = read_json(repo / "metrics" / "train" / "metrics.json")["chosen"]
    assert set(chosen) == {"scale", "epoch", "gamma"}  # zs-linear ran last and chose them on validation


def test_same_params_same_numbers(repo):
    repo, _ = repo
    sh("dvc", "exp", "apply", "lr3", cwd=repo)
    before = read_json(repo / "metrics" / "evaluate" / "metrics.json")
    sh("dvc", "repro", "--force", "train", "evaluate", cwd=repo)
    assert read_json(repo / "metrics" / "evaluate" / "metrics.json") == before


def test_generalised_zero_shot_metrics(repo):
    repo, _ = repo
    m = read_json(repo / "metrics" / "evaluate" / "metrics.json")["gzsl"]
    assert set(m) >= {"seen", "novel", "harmonic", "acc", "per_class", "n_images"}
    assert m["n_images"] == 12 * 6 + 4  # the trained classes' test images and the novel ones
    assert m["novel"] > 0.5 and m["seen"] > 0.6  # chance: 1/7
    assert m["harmonic"] == pytest.approx(2 * m["seen"] * m["novel"] / (m["seen"] + m["novel"]), abs=1e-6)
    assert (repo / "plots" / "gzsl_confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert "gzsl_confusion_matrix" in sh("dvc", "plots", "show", "--json", cwd=repo).stdout


def test_predict_command_formats_bad_files_and_new_classes(repo):
    repo, _ = repo
    photos = write_image_folder(repo.parent / "new-photos", ["green circle"], 3, seed=21)
    (photos / "green_circle" / "broken.jpg").write_bytes(b"not an image at all")
    (photos / "empty").mkdir()
    predict = ["python", "-m", "fewclip.predict", str(photos), "--top-k", "2"]
    as_json = sh("python", "-m", "fewclip.predict", str(photos), str(photos / "empty"), "--top-k", "2",
                 "--format", "json", "--add-class", "green circle", cwd=repo)
    rows = json.loads(as_json.stdout)
    assert len(rows) == 3 and all(len(r["predictions"]) == 2 for r in rows)
    assert sum(r["predictions"][0]["class"] == "green circle" for r in rows) >= 2, rows
    assert "broken.jpg: skipped" in as_json.stderr and "empty: no image files" in as_json.stderr
    assert "3 of 4 images classified over 8 classes (2 novel)" in as_json.stderr
    as_csv = sh(*predict, "--format", "csv", cwd=repo).stdout.splitlines()
    assert as_csv[0] == "path,rank,class,probability" and len(as_csv) == 1 + 3 * 2
    assert all(row.split(",")[2] != "green circle" for row in as_csv[1:])  # not added this time
    table = sh(*predict, cwd=repo).stdout.splitlines()
    assert len(table) == 3 and all("%" in line for line in table)
    bad = sh("python", "-m", "fewclip.predict", str(photos / "empty"), cwd=repo, check=False)
    assert bad.returncode == 1 and bad.stderr.strip().endswith("no image to classify in " + str(photos / "empty"))


def test_adding_images_embeds_only_those(repo):
    """Five new photos and a renamed one: `dvc repro` re-splits and re-embeds, but only the
    five new images go through the backbone."""
    repo, _ = repo
    sh("dvc", "exp", "apply", "lr3", cwd=repo)
    train = repo / "data" / "few_shot" / "train"
    for i, path in enumerate(sorted((train / "green_square").glob("*.jpg"))[:5]):
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(train / "green_square" / f"new {i}.jpg")
    (train / "blue_triangle" / "000.jpg").rename(train / "blue_triangle" / "renamed.jpg")
    out = sh("dvc", "repro", cwd=repo).stdout
    assert {"split", "embed"} <= ran(out)
    cache = read_json(repo / "features" / "summary.json")["cache"]
    assert sum(c["embedded"] for c in cache.values()) == 5, cache
    assert sum(c["cached"] for c in cache.values()) == sum(read_json(repo / "features" / "summary.json")["images"].values()) - 5
