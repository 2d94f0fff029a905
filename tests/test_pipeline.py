"""Smoke test: the real `dvc repro` and `dvc exp run` on a synthetic data set with the tiny CLIP.

One repository is built and run once per module (`base`, committed as "first run"); every test
starts from that committed state (`repo` resets the workspace after each test), and the
experiments that several tests compare are built once, by fixtures, whichever test asks
first. So each test passes alone (`pytest tests/test_pipeline.py::name`) and in any order."""

import csv
import json
import re
import shutil
import time

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import FOLDERS
from fewclip.heads import HEADS
from fewclip.shots import fit_plan
from helpers import copy_repo, run_stage, set_params, sh, truncated_jpeg
from synthetic import write_image_folder


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def base(tiny_checkpoint_ts, tmp_path_factory):
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
                                                       "shots.fit_cache": str(tmp_path_factory.mktemp("fit-cache")),
                                                       "classes.novel": ["blue_circle"],
                                                       "classes.prompts": {"blue_circle": ["blue circle", "blue disc"]},
                                                       "shots.ks": [1, 16, "all"], "shots.seeds": 2})
    sh("dvc", "add", "data", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "synthetic setup", cwd=repo)
    first = sh("dvc", "repro", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "first run", cwd=repo)
    return repo, first


def reset(repo) -> None:
    """Back to the last commit: tracked files, untracked files, and DVC's outputs."""
    sh("git", "reset", "-q", "--hard", cwd=repo)
    sh("git", "clean", "-q", "-fd", cwd=repo)
    sh("dvc", "checkout", "-q", "--force", cwd=repo)


@pytest.fixture
def repo(base):
    """`base` for a test that changes the workspace: reset after it. (Tests that only read
    take `base` itself.)"""
    yield base
    reset(base[0])


def run_exp(repo, name, *args) -> str:
    """`dvc exp run -n name args`, then the workspace back to the last commit; its output."""
    out = sh("dvc", "exp", "run", *args, "-n", name, cwd=repo).stdout
    reset(repo)
    return out


@pytest.fixture(scope="module")
def exp_lr3(base):
    return run_exp(base[0], "lr3", "-S", "heads.mlp.lr=0.003")


@pytest.fixture(scope="module")
def exp_zero(base):
    return run_exp(base[0], "zero", "-S", "mode=zero")




@pytest.fixture(scope="module")
def head_runs(base):
    """Every head other than the mlp (which ran in `base`) through the train and evaluate
    stages in the workspace, then back to the last commit: {head: (train's and evaluate's
    output, the metrics)}. The default head through `dvc repro` (which must rerun train and
    evaluate, whose param `head` is, and suggest, which follows the classifier); the others through the same stage
    scripts run in this process (`run_stage`, as dvc.yaml's commands name them), which
    saves an interpreter and its imports per stage and head."""
    repo, out = base[0], {}
    for h in HEADS:
        if h == "mlp":
            continue
        set_params(repo, mode="few", head=h)
        if h == "gda":
            text = sh("dvc", "repro", cwd=repo).stdout
        else:
            text = ""
            for stage in ("train", "evaluate"):
                text += run_stage(repo, stage).stdout
        out[h] = (text, read_json(repo / "metrics" / "evaluate" / "metrics.json"))
    reset(repo)
    return out


def read_json(path):
    return json.loads(path.read_text())


def test_repro_runs_every_stage_and_reports_the_input(base):
    repo, first = base
    assert ran(first.stdout) == {"params", "split", "embed", "train", "evaluate", "shots", "audit", "suggest"}
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


def test_each_stage_writes_exactly_its_declared_outs(base):
    """Every file the first `dvc repro` made lies in an out that dvc.yaml declares and names
    on the stage's command; every declared out was made (DVC's own dvc.lock and .gitignore
    files aside)."""
    repo = base[0]
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    setup = set(sh("git", "ls-tree", "-r", "--name-only", "HEAD~1", cwd=repo).stdout.splitlines())
    made = {p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()
            and p.relative_to(repo).parts[0] not in (".git", ".dvc", "data") and "__pycache__" not in p.parts
            and p.name not in (".gitignore", "dvc.lock")} - setup
    declared = []
    for name, spec in stages.items():
        for out in spec.get("outs", []):
            out = next(iter(out)) if isinstance(out, dict) else out
            assert out in spec["cmd"].split(), (name, out)
            assert (repo / out).exists(), (name, out)
            declared.append(out)
    assert made and not {f for f in made if not any(f == o or f.startswith(o + "/") for o in declared)}


def test_features_follow_the_documented_format(base):
    repo, _ = base
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


def test_metrics_and_plots_hold_sane_values(base):
    repo, _ = base
    m = read_json(repo / "metrics" / "evaluate" / "metrics.json")
    assert m["test"]["acc"] > 0.6 and 0.6 < m["test"]["balanced_acc"] <= 1  # chance: 1/6
    assert m["val"]["acc"] > 0.5
    report = read_json(repo / "metrics" / "evaluate" / "report.json")["test"]
    assert set(report["per_class"]) == set(FOLDERS) and report["n_images"] == 72
    t = read_json(repo / "metrics" / "train" / "metrics.json")
    assert 1 <= t["best_epoch"] <= t["epochs_run"] <= 40
    acc = (repo / "metrics" / "train" / "plots" / "metrics" / "val" / "acc.tsv").read_text().splitlines()
    # epoch 0 is zero-shot CLIP, then every epoch the mlp trained
    assert acc[0].split("\t") == ["step", "acc"] and len(acc) == 1 + 1 + t["epochs_run"]
    assert [int(line.split("\t")[0]) for line in acc[1:]] == list(range(t["epochs_run"] + 1))
    cm = read_json(repo / "metrics" / "evaluate" / "plots" / "confusion.json")
    assert len(cm) == 6 * 6 and set(cm[0]) == {"actual", "predicted", "count", "rate"}
    assert sum(r["count"] for r in cm) == 72
    for c in FOLDERS:  # every class on both axes, each true class's row sums to 1
        assert sum(r["rate"] for r in cm if r["actual"] == c) == pytest.approx(1, abs=1e-3)
        assert sum(r["predicted"] == c for r in cm) == 6
    assert (repo / "plots" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    for gallery in ("mistakes.jpg", "gzsl_mistakes.jpg"):  # JPEG, capped in size
        assert (repo / "plots" / gallery).read_bytes()[:2] == b"\xff\xd8"
        assert (repo / "plots" / gallery).stat().st_size < 400_000
    shown = json.loads(sh("dvc", "metrics", "show", "--json", cwd=repo).stdout)
    figures = next(iter(shown.values()))["data"]["metrics/evaluate/metrics.json"]["data"]
    flat = {f"{group}.{k}" for group, values in figures.items() for k in values}
    assert flat == {"test.acc", "test.balanced_acc", "test.acc_no_leaks", "val.acc", "gzsl.seen", "gzsl.novel", "gzsl.harmonic",
                    "curve.k01", "curve.k16", "curve.k_all", "curve.zero_shot"}
    shown = sh("dvc", "plots", "show", "--json", cwd=repo)
    assert "confusion.json" in shown.stdout and "acc.tsv" in shown.stdout and "mistakes.jpg" in shown.stdout
    assert "failed to load" not in shown.stdout + shown.stderr


def test_nothing_reruns_and_train_params_do_not_re_embed(base, exp_lr3):
    repo, _ = base
    again = sh("dvc", "repro", cwd=repo)
    assert ran(again.stdout) == set()
    # the curve uses the mlp settings too; suggest follows the classifier (the audit does not)
    assert ran(exp_lr3) == {"params", "train", "evaluate", "shots", "suggest"}


def test_zero_shot_experiment_and_exp_show(base, exp_lr3, exp_zero):
    repo, _ = base
    assert ran(exp_zero) == {"params", "train", "evaluate", "suggest"}
    assert "train: zero-shot CLIP, no training: the class names' text features over 6 classes" in exp_zero
    m = exp_rows(repo)["zero"][1]
    assert m["test"]["acc"] > 0.6
    # in zero mode the classifier is zero-shot CLIP: its curve is flat at zero-shot's accuracy
    assert m["curve"]["k01"] == m["curve"]["k_all"] == m["curve"]["zero_shot"]
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    exps = {e["name"]: e["revs"][0]["data"] for rev in shown for e in (rev.get("experiments") or [])}
    assert {"lr3", "zero"} <= set(exps)
    for name, mode in (("lr3", "few"), ("zero", "zero")):
        assert exps[name]["params"]["params.yaml"]["data"]["mode"] == mode
        assert exps[name]["metrics"]["metrics/evaluate/metrics.json"]["data"]["test"]["acc"] > 0.6


def test_every_head_beats_zero_shot_at_16_shots(base):
    """The shots stage of the real `dvc repro`: every head at 16 shots against zero-shot."""
    repo, first = base
    records = read_json(repo / "metrics" / "shots" / "curve.json")
    curve = {(r["head"], r["k"]): r for r in records}
    zero_shot = curve["zero-shot", "16"]["acc"]
    assert zero_shot < 0.95  # "crimson circle" is a name the tiny CLIP does not know
    assert {h for h, _ in curve} == {*HEADS, "zero-shot"} and {k for _, k in curve} == {"1", "16", "all"}
    for name in HEADS:
        r = curve[name, "16"]
        assert r["seeds"] == 2 and r["shots"] == 16
        assert r["acc"] > zero_shot + 0.05, (name, r, zero_shot)
    fits = (repo / "metrics" / "shots" / "fits.csv").read_text().splitlines()
    # 2 seeds at k = 1 and 16; at "all" (the same images for every seed) a deterministic head
    # is fitted once, the two stochastic ones (mlp, tip-adapter-f) once per seed
    n_fits = len(HEADS) * 2 * 2 + len(HEADS) + 2
    assert fits[0] == "head,k,seed,shots,acc,seconds,cached" and len(fits) == 1 + n_fits + 3  # + zero-shot per k
    assert f"shots: {n_fits} fits in " in first.stdout
    # the workspace experiment's own classifier at each shot count is a headline metric
    params = yaml.safe_load((repo / "params.yaml").read_text())
    own = "zero-shot" if params["mode"] == "zero" else params["head"]
    m = read_json(repo / "metrics" / "evaluate" / "metrics.json")["curve"]
    assert m == {"k01": curve[own, "1"]["acc"], "k16": curve[own, "16"]["acc"],
                 "k_all": curve[own, "all"]["acc"], "zero_shot": zero_shot}
    assert (repo / "plots" / "shots.png").read_bytes()[:4] == b"\x89PNG"


def test_every_head_through_train_and_evaluate(head_runs):
    """`head: gda` reruns train and evaluate only; every head beats zero-shot on the test
    images."""
    assert ran(head_runs["gda"][0]) == {"params", "train", "evaluate", "suggest"}
    for head, (out, m) in head_runs.items():
        assert f"few-shot {head} head" in out and m["test"]["acc"] > m["curve"]["zero_shot"] + 0.05, (head, m)
    # what a head chose on validation is named in the train stage's line
    assert re.search(r"train: few-shot zs-linear head .*; scale=[\d.]+; epoch=\d+; gamma=[\d.]+",
                     head_runs["zs-linear"][0])


def test_same_params_same_numbers(repo, exp_lr3):
    repo, _ = repo
    sh("dvc", "exp", "apply", "lr3", cwd=repo)
    before = read_json(repo / "metrics" / "evaluate" / "metrics.json")
    sh("dvc", "repro", "--force", "train", "evaluate", cwd=repo)
    assert read_json(repo / "metrics" / "evaluate" / "metrics.json") == before


def test_generalised_zero_shot_metrics(base):
    repo, _ = base
    m = read_json(repo / "metrics" / "evaluate" / "metrics.json")["gzsl"]
    assert set(m) == {"seen", "novel", "harmonic"}
    report = read_json(repo / "metrics" / "evaluate" / "report.json")["gzsl"]
    assert set(report) >= {"acc", "per_class", "n_images", "seen_bias"}
    assert report["n_images"] == 12 * 6 + 4  # the trained classes' test images and the novel ones
    assert m["novel"] > 0.5 and m["seen"] > 0.6  # chance: 1/7
    assert m["harmonic"] == pytest.approx(2 * m["seen"] * m["novel"] / (m["seen"] + m["novel"]), abs=1e-6)
    assert (repo / "plots" / "gzsl_confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert "gzsl_confusion" in sh("dvc", "plots", "show", "--json", cwd=repo).stdout


def test_predict_command_formats_bad_files_and_new_classes(base):
    repo, _ = base
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
    sheet = repo.parent / "sheet.jpg"
    drawn = sh(*predict, "--contact-sheet", str(sheet), cwd=repo)
    table = drawn.stdout.splitlines()
    assert len(table) == 3 and all("%" in line for line in table)
    assert f"contact sheet of 3 photos -> {sheet}" in drawn.stderr
    assert sheet.read_bytes()[:2] == b"\xff\xd8" and 0 < sheet.stat().st_size < 400_000
    # a missing path fails the command (after classifying the rest); a file named twice is
    # classified once; a class added in another spelling of an existing one is not added; the
    # sheet is written in the format its name says, captions to a tenth of a percent
    one = photos / "green_circle" / "000.jpg"
    png = repo.parent / "sheet.png"
    odd = sh("python", "-m", "fewclip.predict", str(photos), str(one), str(repo.parent / "gone.jpg"), "--format",
             "json", "--add-class", "green circle", "--add-class", "Green_Circle ", "--add-class", "Crimson Circle",
             "--contact-sheet", str(png), cwd=repo, check=False)
    assert odd.returncode == 1 and "error: 1 named path(s) do not exist: " + str(repo.parent / "gone.jpg") in odd.stderr
    assert len(json.loads(odd.stdout)) == 3 and "1 file(s) named more than once" in odd.stderr
    assert "--add-class 'Green_Circle ': given twice (as 'green circle'); added once" in odd.stderr
    assert "already has the class 'crimson_circle'; not added again" in odd.stderr
    assert "over 8 classes (2 novel)" in odd.stderr and png.read_bytes()[:4] == b"\x89PNG"
    assert re.fullmatch(r".*\d+\.\d%", table[0])
    wrong = sh(*predict, "--contact-sheet", str(repo.parent / "sheet.gif"), cwd=repo, check=False)
    assert wrong.returncode == 1 and "--contact-sheet" in wrong.stderr and "sheet.gif" in wrong.stderr
    bad = sh("python", "-m", "fewclip.predict", str(photos / "empty"), cwd=repo, check=False)
    assert bad.returncode == 1 and bad.stderr.strip().endswith("no image to classify in " + str(photos / "empty"))


def test_adding_images_embeds_only_those(repo):
    """Five new photos and a renamed one: `dvc repro embed` re-splits and re-embeds, but only
    the five new images go through the backbone."""
    repo, _ = repo
    train = repo / "data" / "few_shot" / "train"
    for i, path in enumerate(sorted((train / "green_square").glob("*.jpg"))[:5]):
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(train / "green_square" / f"new {i}.jpg")
    (train / "blue_triangle" / "000.jpg").rename(train / "blue_triangle" / "renamed.jpg")
    out = sh("dvc", "repro", "embed", cwd=repo).stdout
    assert ran(out) == {"split", "embed"}
    cache = read_json(repo / "features" / "summary.json")["cache"]
    assert sum(c["embedded"] for c in cache.values()) == 5, cache
    assert sum(c["cached"] for c in cache.values()) == sum(read_json(repo / "features" / "summary.json")["images"].values()) - 5


def exp_rows(repo) -> dict:
    """`dvc exp show --json`: {experiment name: (params.yaml params, evaluate metrics)}."""
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    return {e["name"]: (e["revs"][0]["data"]["params"]["params.yaml"]["data"],
                        e["revs"][0]["data"]["metrics"]["metrics/evaluate/metrics.json"]["data"])
            for rev in shown for e in (rev.get("experiments") or []) if e.get("name")}


def test_a_queued_sweep_compares_experiments(repo):
    """The README's sweep on the tiny world: a queued grid, run by `dvc queue start`; each
    experiment appears in `dvc exp show` with its own params and its own accuracy."""
    repo, _ = repo
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "before the sweep", "--allow-empty", cwd=repo)
    before = set(exp_rows(repo))
    sh("dvc", "exp", "run", "--queue", "-S", "mode=few,zero", "-S", "head=ncm", cwd=repo)
    sh("dvc", "queue", "start", cwd=repo)
    for _ in range(600):  # `queue start` returns once its worker is up; wait for the 2 runs
        status = sh("dvc", "queue", "status", cwd=repo).stdout
        if not any(word in status for word in ("Queued", "Running")):
            break
        time.sleep(1)
    assert "Failed" not in status, status
    rows = {name: row for name, row in exp_rows(repo).items() if name not in before}
    assert sorted((p["mode"], p["head"]) for p, _ in rows.values()) == [("few", "ncm"), ("zero", "ncm")]
    for params, m in rows.values():
        # zero mode is zero-shot CLIP whatever the head; few mode is the head itself, which
        # (deterministic) the shots curve also fitted on the same split ("all")
        expected = m["curve"]["zero_shot"] if params["mode"] == "zero" else m["curve"]["k_all"]
        assert m["test"]["acc"] == pytest.approx(expected, abs=1e-4), (params, m)
    few = [m["test"]["acc"] for p, m in rows.values() if p["mode"] == "few"]
    zero = [m["test"]["acc"] for p, m in rows.values() if p["mode"] == "zero"]
    assert min(few) > max(zero)  # the tiny CLIP does not know "crimson": few shots repair it
    table = sh("dvc", "exp", "show", "--only-changed", "--csv", cwd=repo).stdout.splitlines()
    assert len(table[0].split(",")) <= 25, table[0]


# Through `dvc exp run`: a bad value in few and in zero mode, and a key only `-S +key` can
# add. Every message of the schema is unit-tested in test_params.py.
BAD_PARAMS = [
    (["-S", "head=gdaa"], "head='gdaa' is not allowed: one of mlp, linear, ncm, tip-adapter, tip-adapter-f, "
                          "gda, zs-linear; did you mean gda?"),
    (["-S", "mode=zero", "-S", "head=tip_adapter"], "head='tip_adapter' is not allowed"),
    (["-S", "+heads.gda.alpah=1"], "unknown key heads.gda.alpah; did you mean heads.gda.alpha?"),
]


@pytest.mark.parametrize("args,message", BAD_PARAMS, ids=[" ".join(a) for a, _ in BAD_PARAMS])
def test_bad_params_stop_the_experiment_at_once(repo, args, message):
    """Each fault stops `dvc exp run` within seconds, before any embedding, with one line
    that names the key; the workspace's results and earlier experiments stay."""
    repo, _ = repo
    before_metrics = (repo / "metrics" / "evaluate" / "metrics.json").read_bytes()
    before_exps = set(exp_rows(repo))
    start = time.perf_counter()
    proc = sh("dvc", "exp", "run", *args, cwd=repo, check=False)
    seconds = time.perf_counter() - start
    ours = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode != 0 and len(ours) == 1 and message in ours[0], proc.stdout + proc.stderr
    assert "`git checkout params.yaml` restores the committed file" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "Running stage 'embed'" not in proc.stdout
    assert seconds < 10, seconds
    sh("git", "checkout", "params.yaml", cwd=repo)
    assert (repo / "metrics" / "evaluate" / "metrics.json").read_bytes() == before_metrics
    assert before_exps <= set(exp_rows(repo))


def test_a_missing_key_is_named(repo):
    repo, _ = repo
    params = (repo / "params.yaml").read_text()
    try:
        assert "\n  batch_size: 64\n" in params
        (repo / "params.yaml").write_text(params.replace("\n  batch_size: 64\n", "\n"))
        proc = sh("dvc", "exp", "run", cwd=repo, check=False)
        ours = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert proc.returncode != 0 and len(ours) == 1, proc.stdout + proc.stderr
        assert "embed.batch_size is missing" in ours[0] and "Traceback" not in proc.stderr
        assert "Running stage 'embed'" not in proc.stdout or "embed: train:" not in proc.stdout
    finally:
        (repo / "params.yaml").write_text(params)


def test_a_param_of_another_head_does_not_retrain(repo):
    """`train` depends on the configured head's settings only (`heads.${head}`): the mlp's
    sampler reruns the shots curve (which fits the mlp too), not the gda head's training."""
    repo, _ = repo
    sh("dvc", "exp", "run", "-S", "mode=few", "-S", "head=gda", "-n", "gda-weighted", cwd=repo)
    exp = sh("dvc", "exp", "run", "-S", "heads.mlp.sampler=uniform", "-n", "gda-uniform", cwd=repo)
    assert ran(exp.stdout) == {"params", "shots", "evaluate"}
    # and the shots stage fits only the mlp again: every other fit comes from the fit cache
    plan = fit_plan(list(HEADS), [1, 16, "all"], 2)
    mlp = sum(name == "mlp" for _, _, name in plan)
    assert f"shots: {len(plan)} fits in " in exp.stdout and f"({len(plan) - mlp} from the fit cache, {mlp} fitted" in exp.stdout
    rows = exp_rows(repo)
    assert rows["gda-uniform"][1]["test"] == rows["gda-weighted"][1]["test"]


def test_predict_on_ray_gives_the_local_predictions(base):
    """`predict --engine ray` (a Ray started for the run, as on a machine without a cluster)."""
    repo, _ = base
    photos = write_image_folder(repo.parent / "ray-photos", ["green circle", "red square"], 2, seed=22)
    local = json.loads(sh("python", "-m", "fewclip.predict", str(photos), "--format", "json", cwd=repo).stdout)
    remote = json.loads(sh("python", "-m", "fewclip.predict", str(photos), "--format", "json",
                           "--engine", "ray", cwd=repo).stdout)
    assert [r["path"] for r in remote] == [r["path"] for r in local] and len(local) == 4
    for a, b in zip(local, remote):
        assert [p["class"] for p in a["predictions"]] == [p["class"] for p in b["predictions"]]
        assert [p["probability"] for p in a["predictions"]] == pytest.approx([p["probability"] for p in b["predictions"]], abs=1e-4)


def test_an_open_clip_model_runs_end_to_end(base, random_vit_s_32):
    """`dvc exp run -S model=open_clip:<architecture>:<weights file>`: a full-size open_clip
    architecture with random weights goes through every stage. (Its accuracy is chance; the
    tiny CLIP's trained weights through open_clip are asserted in test_tiny_world.py.)"""
    repo = base[0]
    name = f"open_clip:ViT-S-32:{random_vit_s_32}"
    out = run_exp(repo, "oc-random", "-S", f"model={name}", "-S", "shots.heads=[ncm]", "-S", "shots.ks=[1]",
                  "-S", "shots.seeds=1")
    assert ran(out) == {"params", "embed", "train", "evaluate", "shots", "audit", "suggest"}
    assert re.search(rf"embed: done in [\d.]+s \({re.escape(name)} on cpu at (fp32|bf16) loaded in", out), out
    params, m = exp_rows(repo)["oc-random"]
    assert params["model"] == name and 0 <= m["test"]["acc"] <= 1


TOY_HEAD = '''"""A toy head: each class scored by its nearest training feature."""

from __future__ import annotations

import torch

from ..kinds import Positive
from .base import Head, as_labels, as_tensor, register


@register
class NearestNeighbour(Head):
    name = "toy-nn"
    fitted = ("n_classes_", "X_", "y_")

    def __init__(self, scale: Positive = 20.0):
        self.scale = scale

    def _fit(self, X, y, X_val, y_val, n_classes, on_epoch) -> None:
        self._set_classes(y, n_classes)
        self.X_, self.y_ = as_tensor(X), as_labels(y)

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        sims = X @ self.X_.T
        best = torch.full((len(X), self.n_classes_), -1.0)
        return self.scale * best.scatter_reduce(1, self.y_.expand(len(X), -1), sims, "amax")
'''


def test_a_new_head_is_one_file_one_line_and_its_params_block(repo):
    """A head added as the README says: its file, one import line, its `heads:` block. The
    schema takes its settings from its signature; `dvc repro` runs it through train, evaluate
    and the shots curve, and does not re-embed (split and embed do not depend on the heads)."""
    repo, _ = repo
    (repo / "fewclip" / "heads" / "toy.py").write_text(TOY_HEAD)
    registry = repo / "fewclip" / "heads" / "__init__.py"
    text = registry.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("from . import mlp"))
    registry.write_text(text.replace(line, line + "\nfrom . import toy  # noqa: E402"))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["heads"]["toy-nn"] = {"scale": 20.0}
    params.update(head="toy-nn")
    params["shots"]["heads"] = ["toy-nn", "ncm"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    here = {"PYTHONPATH": str(repo)}  # the copy's package, with the new head
    out = sh("dvc", "repro", cwd=repo, extra_env=here).stdout
    # the heads package changed: the stages that import it run, embed does not
    assert ran(out) == {"params", "train", "evaluate", "shots", "audit", "suggest"}
    assert "train: few-shot toy-nn head" in out
    curve = {(r["head"], r["k"]): r for r in read_json(repo / "metrics" / "shots" / "curve.json")}
    assert curve["toy-nn", "16"]["acc"] > curve["zero-shot", "16"]["acc"] + 0.05
    m = read_json(repo / "metrics" / "evaluate" / "metrics.json")
    assert m["test"]["acc"] > m["curve"]["zero_shot"] + 0.05 and m["curve"]["k16"] == curve["toy-nn", "16"]["acc"]
    # its settings are checked as declared: a scale of 0 is refused by the params stage
    params["heads"]["toy-nn"]["scale"] = 0
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = sh("dvc", "repro", cwd=repo, check=False, extra_env=here)
    assert proc.returncode != 0 and "heads.toy-nn.scale=0: must be greater than 0" in proc.stderr + proc.stdout


def test_suggest_ranks_a_pool_leaves_out_training_copies_and_only_copies(base):
    repo, _ = base
    pool = write_image_folder(repo.parent / "pool", {"mixed": "green square", "more": "purple circle"}, 4, seed=40)
    shutil.copy(repo / "data" / "few_shot" / "train" / "green_square" / "000.jpg", pool / "mixed" / "again.jpg")
    (pool / "mixed" / "junk.jpg").write_text("not a photo")
    before = {p: p.read_bytes() for p in pool.rglob("*") if p.is_file()}
    cache = yaml.safe_load((repo / "params.yaml").read_text())["embed"]["feature_cache"]
    out = sh("python", "-m", "fewclip.suggest", str(pool), "--n", "50", "--sort-into", str(repo.parent / "sorted"),
             "--feature-cache", cache, cwd=repo)
    assert "junk.jpg: skipped" in out.stderr
    # the copy, and any flat drawing that matches a training one pixel for pixel (look-alikes)
    left_out = int(re.search(r"(\d+) pool photo\(s\) duplicate training photos and are left out", out.stderr)[1])
    kept = 9 - left_out
    assert 1 <= left_out <= 3 and f"--n 50 is more than the {kept} pool photos left: all of them" in out.stderr
    rows = list(csv.DictReader(open(repo / "suggest" / "next.csv")))
    assert len(rows) == kept and str(pool / "mixed" / "again.jpg") not in {r["path"] for r in rows}
    assert all(r["reason"] and 0 < float(r["probability"]) <= 1 for r in rows)
    sorted_files = sorted((repo.parent / "sorted").rglob("*.jpg"))
    assert len(sorted_files) == kept and {p.parent.name for p in sorted_files} <= set(FOLDERS) | {"blue_circle"}
    assert sum(p.parent.name == "green_square" for p in sorted_files) >= 2
    assert before == {p: p.read_bytes() for p in pool.rglob("*") if p.is_file()}  # the pool is untouched
    assert (repo / "suggest" / "next.jpg").read_bytes()[:2] == b"\xff\xd8"
    again = sh("python", "-m", "fewclip.suggest", str(pool), "--n", "3", "--sort-into", str(repo.parent / "sorted"),
               "--feature-cache", cache, "--out", str(repo.parent / "n3.csv"), cwd=repo)
    assert "(3 already there)" in again.stderr  # copies only, never twice
    none = sh("python", "-m", "fewclip.suggest", str(pool), "--classifier", "nothing.pt", cwd=repo, check=False)
    assert none.returncode == 1 and "nothing.pt: no trained classifier (run `dvc repro train`)" in none.stderr
    # the pipeline's stage: without a pool it says so; with data.pool_dir it runs the command
    assert (repo / "suggest" / "next.csv").exists()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert "suggest" in lock and "audit" in lock


def test_the_audit_stage_outputs_and_the_leak_free_accuracy(base):
    repo, first = base
    assert "Running stage 'audit'" in first.stdout
    header = (repo / "audit" / "suspect_labels.csv").read_text().splitlines()[0]
    assert header == "path,label,suggested,score"
    assert (repo / "audit" / "duplicates.csv").read_text().splitlines()[0] == "path,duplicate_of,similarity,kind,where"
    assert (repo / "audit" / "outliers.csv").read_text().startswith("path,split,label,nearest_class,similarity,z")
    counts = read_json(repo / "metrics" / "audit" / "metrics.json")["audit"]
    assert set(counts) == {"suspects", "leaks", "duplicates", "outliers"}
    summary = read_json(repo / "audit" / "summary.json")
    assert summary["folds"] >= 2 and summary["head"] == "gda"
    m = read_json(repo / "metrics" / "evaluate" / "metrics.json")
    assert 0 <= m["test"]["acc_no_leaks"] <= 1
    for jpg in ("suspects.jpg", "leaks.jpg"):
        assert (repo / "plots" / jpg).read_bytes()[:2] == b"\xff\xd8"


def test_the_suggest_stage_ranks_data_pool_dir(repo):
    repo, _ = repo
    pool = write_image_folder(repo / "data" / "pool", {"unsorted": "orange square"}, 3, seed=41)
    try:
        set_params(repo, **{"data.pool_dir": "data/pool", "suggest.n": 2})
        out = run_stage(repo, "suggest")
        rows = list(csv.DictReader(open(repo / "suggest" / "next.csv")))
        assert len(rows) == 2 and all(r["path"].startswith(str(pool.relative_to(repo))) for r in rows)
        assert "2 of 3 pool photos to label next" in out.stderr
    finally:
        shutil.rmtree(pool)
