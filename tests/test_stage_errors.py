"""Bad input to the stages: each stops with one line that names the file or value."""

import re
import shutil

import pytest

from conftest import CLASSES
from helpers import ROOT, run_stage, set_params, sh, truncated_jpeg
from synthetic import write_image_folder


@pytest.fixture
def project(tmp_path):
    """params.yaml and stages in a temporary folder, pointing at a small synthetic data set."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "stages", tmp_path / "stages")
    write_image_folder(tmp_path / "d" / "train", CLASSES[:3], 3, seed=0)
    write_image_folder(tmp_path / "d" / "test", CLASSES[:3], 2, seed=1)
    set_params(tmp_path, **{"data.dir": "d", "data.train_dir": "d/train", "data.test_dir": "d/test", "data.zero_shot_dir": "",
                            "embed.num_workers": 0, "embed.feature_cache": "feature-cache"})
    return tmp_path


def stage_error(project, stage, *args) -> str:
    """The one `error:` line and exit code 1 of a stage run in this process (`run_stage`;
    `test_a_broken_layout_rule_stops_split_with_one_line` runs the real command); a params
    error adds one indented line, how to restore params.yaml."""
    proc = run_stage(project, stage, *args, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and lines[1:] in ([], [lines[-1]]), proc.stderr
    assert len(lines) == 1 or "git checkout params.yaml" in lines[1], proc.stderr
    return lines[0]


def test_the_project_split_runs_clean(project):
    proc = run_stage(project, "split")
    assert "9 images in 3 classes" in proc.stdout
    assert (project / "splits" / "train.csv").is_file()


def test_a_broken_layout_rule_stops_split_with_one_line(project):
    """The rules themselves are unit-tested (tests/test_data.py); here the stage's message."""
    (project / "d" / "train" / "bench").mkdir()
    (project / "d" / "train" / "bench" / "notes.txt").write_text("no photos yet")
    proc = sh("python", "stages/split.py", "splits", cwd=project, check=False)  # the real command, once
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    msg = proc.stderr.strip()
    assert "d/train: class folder(s) ['bench'] hold no usable image" in msg


def test_missing_data_folder_is_named(project):
    set_params(project, **{"data.train_dir": "d/nothing-here"})
    msg = stage_error(project, "split")
    assert "params.yaml: data.train_dir='d/nothing-here': data folder not found; obtain the data" in msg


def test_bad_params_are_named(project):
    set_params(project, **{"split.val_fraction": 1.5})
    assert "params.yaml: split.val_fraction=1.5: must be less than 1" in stage_error(project, "split")


def test_unknown_model_name_stops_embed(project):
    run_stage(project, "split")
    set_params(project, model="ViT-Q/99")
    msg = stage_error(project, "embed")
    assert "params.yaml: model='ViT-Q/99': neither a CLIP model name" in msg


def test_class_whose_every_image_fails_to_decode_stops_embed(project, tiny_checkpoint):
    broken = project / "d" / "train" / "black_cat"
    broken.mkdir()
    for i in range(2):
        truncated_jpeg(broken / f"{i}.jpg")
    write_image_folder(project / "d" / "test", [], 0, seed=0)
    run_stage(project, "split")
    set_params(project, model=str(tiny_checkpoint))
    proc = run_stage(project, "embed", check=False)
    assert proc.returncode == 1
    assert re.search(r"skipped d/train/black_cat/[01]\.jpg: cannot decode: image file is truncated", proc.stderr)
    assert "error: no training image of class(es) ['black_cat'] could be decoded" in proc.stderr


def test_a_mode_that_does_not_exist(project):
    set_params(project, mode="some")
    assert "mode='some' is not allowed: one of few, zero" in stage_error(project, "train")


@pytest.mark.parametrize("stage", ["split", "embed", "train", "shots"])
def test_every_stage_checks_every_key_before_work(project, stage):
    """`dvc repro -s <stage>` is covered too: each stage checks the whole file first (the heads'
    groups where it uses heads: split and embed do not import them)."""
    set_params(project, **{"shots.seeds": 0})
    assert "shots.seeds=0: must be greater than or equal to 1" in stage_error(project, stage)
    if stage in ("train", "shots"):
        set_params(project, **{"shots.seeds": 1, "heads.gda.alphas": [1, -2]})
        assert "heads.gda.alphas[1]=-2: must be greater than 0" in stage_error(project, stage)


def test_the_params_stage_checks_the_heads_and_the_model_name(project):
    set_params(project, **{"heads.gda.alphas": [1, -2], "head": "svm", "model": "open_clip:ViT-B-32"})
    proc = sh("python", "-m", "fewclip.pipeline.check", "params.yaml", cwd=project, check=False)
    assert proc.returncode == 1
    assert "heads.gda.alphas[1]=-2: must be greater than 0" in proc.stderr and "head='svm' is not allowed" in proc.stderr
    set_params(project, **{"heads.gda.alphas": [1, 2], "head": "gda"})
    proc = sh("python", "-m", "fewclip.pipeline.check", "params.yaml", cwd=project, check=False)
    assert proc.returncode == 1 and "error: params.yaml: model='open_clip:ViT-B-32': an open_clip name is" in proc.stderr


def test_the_ray_engine_needs_an_explicit_device(project):
    """The cluster's device sets the precision of the cached features: `auto` is refused, by
    the schema, so the params stage catches it before any stage runs."""
    set_params(project, **{"embed.engine": "ray"})
    message = "params.yaml: embed: with engine: ray, device must be cpu or cuda"
    assert message in stage_error(project, "split")
    proc = sh("python", "-m", "fewclip.pipeline.check", "params.yaml", cwd=project, check=False)
    assert proc.returncode == 1 and message in proc.stderr


def test_a_stage_takes_exactly_the_paths_its_command_names(project):
    """No silent defaults: dvc.yaml names every path on the command."""
    proc = run_stage(project, "train", "features", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith("train.py FEATURES CLASSIFIER_OUT LIVE_DIR (got 1 of the 3 paths)")
