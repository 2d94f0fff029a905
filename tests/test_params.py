"""The params.yaml schema: every fault is one line naming the key and what is allowed, and the
message ends with how to restore a file that `dvc exp run -S` changed."""

import copy

import pytest
import yaml

from fewclip import SettingError, UserError
from fewclip.pipeline.heads_schema import declared_heads
from fewclip.pipeline.params import check_params, load_params
from helpers import ROOT

GOOD = yaml.safe_load((ROOT / "params.yaml").read_text())


def fault(change) -> str:
    params = copy.deepcopy(GOOD)
    change(params)
    with pytest.raises(UserError) as e:
        check_params(params, heads=declared_heads())
    message = str(e.value)
    assert message.startswith("params.yaml: ") and message.splitlines()[-1] == RESTORE
    return message


RESTORE = ("  (`dvc exp run -S` writes its values into params.yaml even when the run fails: "
           "`git checkout params.yaml` restores the committed file)")


def test_the_repository_params_are_valid():
    assert load_params(ROOT / "params.yaml") == GOOD


CASES = {
    "unknown head": (lambda p: p.update(head="gdaa"),
                     "head='gdaa' is not allowed: one of mlp, linear, ncm, tip-adapter, tip-adapter-f, gda, "
                     "zs-linear; did you mean gda?"),
    "unknown head in the shots list": (lambda p: p["shots"].update(heads=["gda", "svm"]),
                                       "shots.heads[1]='svm' is not allowed"),
    "unknown nested key": (lambda p: p["heads"]["gda"].update(alpah=1),
                           "unknown key heads.gda.alpah; did you mean heads.gda.alpha? (allowed here: alpha, alphas)"),
    "unknown top-level key": (lambda p: p.update(sampler="uniform"),
                              "unknown key sampler; did you mean heads.mlp.sampler? (allowed here: model, mode, head,"),
    "unknown key with a near miss": (lambda p: p["embed"].update(batchsize=8),
                                     "did you mean embed.batch_size?"),
    "wrong type": (lambda p: p["heads"]["mlp"].update(lr="fast"), "heads.mlp.lr='fast': must be a number"),
    "float for a whole number": (lambda p: p["heads"]["mlp"].update(epochs=2.5),
                                 "heads.mlp.epochs=2.5: must be a whole number"),
    "string for a number": (lambda p: p.update(seed="0"), "seed='0': must be a whole number"),
    "out of range": (lambda p: p["split"].update(val_fraction=1.5), "split.val_fraction=1.5: must be less than 1"),
    "negative grid value": (lambda p: p["heads"]["gda"].update(alphas=[1, -2]),
                            "heads.gda.alphas[1]=-2: must be greater than 0"),
    "empty grid": (lambda p: p["heads"]["linear"].update(Cs=[]), "heads.linear.Cs=[]: List should have at least 1"),
    "bad shot count": (lambda p: p["shots"].update(ks=[1, 0, "al"]),
                       "shots.ks[1]=0: must be 'all' or a whole number >= 1\n  shots.ks[2]='al'"),
    "bad sampler": (lambda p: p["heads"]["mlp"].update(sampler="balanced"),
                    "heads.mlp.sampler='balanced' is not allowed: one of weighted, uniform"),
    "bad template": (lambda p: p["embed"].update(templates=["a photo"]),
                     "embed.templates[0]='a photo': must be a text with exactly one '{}'"),
    "bad device": (lambda p: p["embed"].update(device="gpu"), "embed.device='gpu': must be auto, cpu, cuda or cuda:N"),
    "bad workers": (lambda p: p["embed"].update(num_workers=-1),
                    "embed.num_workers=-1: must be 'auto' or a whole number >= 0"),
    "empty prompt list": (lambda p: p["classes"]["prompts"].update(bench=[]),
                          "classes.prompts.bench=[]: must be a name or a non-empty list of names"),
    "missing key": (lambda p: p["split"].pop("val_fraction"),
                    "split.val_fraction is missing; add it"),
    "missing group": (lambda p: p.pop("gzsl"), "gzsl is missing (a group with keys seen_bias)"),
    "empty group": (lambda p: p.update(split=None), "split is empty; it needs the keys val_fraction, min_per_class"),
    "data folder outside data.dir": (lambda p: p["data"].update(test_dir="/elsewhere/test"),
                                     "data: test_dir='/elsewhere/test' must lie inside data.dir='data'"),
    "missing head settings": (lambda p: p["heads"].pop("zs-linear"), "heads.zs-linear is missing"),
}


@pytest.mark.parametrize("name", CASES)
def test_each_fault_is_named_in_one_line(name):
    change, expected = CASES[name]
    message = fault(change)
    faults = message.splitlines()[:-1]
    assert expected in (faults[0] if len(faults) == 1 else message)
    assert len(faults) == 1 or faults[0] == f"params.yaml: {len(faults) - 1} problems:"


def test_every_fault_is_listed_at_once():
    def two(p):
        p.update(mode="some")
        p["heads"]["gda"].update(alpha="x")
    lines = fault(two).splitlines()
    assert lines[0] == "params.yaml: 2 problems:" and len(lines) == 4
    assert lines[1].startswith("  mode='some'") and lines[2].startswith("  heads.gda.alpha='x'")


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(UserError, match="parameter file not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("model: [unclosed")
    with pytest.raises(UserError, match="params.yaml: not valid YAML"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("- a list")
    with pytest.raises(UserError, match="expected a mapping of parameters, got list"):
        load_params(tmp_path / "params.yaml")


def test_run_freezes_what_the_imports_made_and_names_settings_as_the_caller_does(capsys):
    """`run` freezes what exists (not traversed by any collection, nor at exit); a UserError is
    one line on stderr and exit code 1, a library SettingError named as params key or flag."""
    import gc

    from fewclip.pipeline.runner import run

    seen = {}
    try:
        run(lambda: seen.update(frozen=gc.get_freeze_count()))
        assert seen["frozen"] > 0
        with pytest.raises(SystemExit) as exit_:
            run(lambda: (_ for _ in ()).throw(UserError("something is off")))
        assert exit_.value.code == 1 and capsys.readouterr().err == "error: something is off\n"
        bad = SettingError("decode", "gpu", "needs CUDA")
        for names, shown in ((None, "params.yaml: embed.decode='gpu': needs CUDA"),
                             ({"decode": "--decode"}, "--decode='gpu': needs CUDA"), ({}, "decode='gpu': needs CUDA")):
            with pytest.raises(SystemExit):
                run(lambda: (_ for _ in ()).throw(bad), names)
            assert capsys.readouterr().err == f"error: {shown}\n"
        with pytest.raises(SystemExit) as exit_:  # a command's own exit status (predict's 1)
            run(lambda: 3)
        assert exit_.value.code == 3
        run(lambda: 0)  # 0 and None return normally
    finally:
        gc.unfreeze()


def test_the_launcher_pauses_the_collector_only_while_the_stage_imports(tmp_path):
    """dvc.yaml runs the stage scripts through `python -m fewclip.pipeline.runner`; the scripts
    themselves set no gc state."""
    from helpers import sh

    script = tmp_path / "stage.py"
    script.write_text("import gc\nimport sys\nat_import = gc.isenabled()\n"
                      "from fewclip.pipeline.runner import run\n\n"
                      "def main():\n    print(at_import, gc.isenabled(), gc.get_freeze_count() > 0, sys.argv[1:])\n\n"
                      "if __name__ == '__main__':\n    run(main)\n")
    out = sh("python", "-m", "fewclip.pipeline.runner", script, "a", "b", cwd=tmp_path).stdout
    assert out.strip() == "False True True ['a', 'b']"
    assert sh("python", script, "a", cwd=tmp_path).stdout.strip() == "True True True ['a']"
