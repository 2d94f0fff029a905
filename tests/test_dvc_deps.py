"""`dvc.yaml` cannot drift from the code: each stage depends on exactly the project modules it
imports (directly or through the package) and exactly the params it reads, both derived here
from the stage scripts' source."""

import ast
from pathlib import Path

import pytest
import yaml

from fewclip.heads import HEADS
from fewclip.pipeline.heads_schema import declared_heads
from fewclip.pipeline.params import load_params, schema

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    """fewclip.x -> fewclip/x.py, fewclip -> fewclip/__init__.py; None outside the project."""
    parts = name.split(".")
    if parts[0] != "fewclip":
        return None
    path = ROOT.joinpath(*parts)
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"


def project_imports(path: Path) -> set[Path]:
    """The project files that running `path` executes: its fewclip imports, the modules those
    import, and every package __init__ on the way."""
    seen: set[Path] = set()
    todo = [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        package = ".".join(current.relative_to(ROOT).with_suffix("").parts[:-1])
        for node in ast.walk(ast.parse(current.read_text(), filename=str(current))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            for name in names:
                for i in range(1, len(name.split(".")) + 1):  # fewclip, then fewclip.x
                    file = module_file(".".join(name.split(".")[:i]))
                    if file is not None and file.is_file():
                        todo.append(file)
    return {p for p in seen if p != path} | {path}


def _chain(node: ast.AST, params: str) -> str | None:
    """`p["a"]["b"]` -> "a.b", `p["heads"][p["head"]]` -> "heads.${head}", `p.get("a")` -> "a"."""
    root = node
    while isinstance(root, ast.Subscript) or (isinstance(root, ast.Call) and isinstance(root.func, ast.Attribute)):
        root = root.value if isinstance(root, ast.Subscript) else root.func.value
    if not (isinstance(root, ast.Name) and root.id == params):
        return None
    keys = []
    while True:
        if isinstance(node, ast.Subscript):
            index = node.slice
            if isinstance(index, ast.Constant) and isinstance(index.value, str):
                keys.append(index.value)
            else:
                inner = _chain(index, params)
                assert inner, f"params read with a computed key: {ast.unparse(node)}"
                keys.append("${" + inner + "}")
            node = node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and node.args and isinstance(node.args[0], ast.Constant)):
            keys.append(node.args[0].value)
            node = node.func.value
        elif isinstance(node, ast.Name) and node.id == params:
            return ".".join(reversed(keys)) if keys else None
        else:
            return None


def param_reads(path: Path) -> set[str]:
    """The params a stage script reads: every maximal key chain on the `load_params()` result."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
             and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "load_params"
             for t in node.targets if isinstance(t, ast.Name)}
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    reads = set()
    for name in names:
        for node in ast.walk(tree):
            chain = _chain(node, name)
            parent = parents.get(node)
            extends = (isinstance(parent, ast.Subscript) and parent.value is node) or \
                (isinstance(parent, ast.Attribute) and parent.attr == "get")
            if chain and not extends:
                reads.add(chain)
            if isinstance(node, ast.Name) and node.id == name and not isinstance(parents.get(node), (ast.Subscript, ast.Attribute)) \
                    and not isinstance(parents.get(node), ast.Assign):
                pytest.fail(f"{path.name}: the whole params dict is passed on ({ast.unparse(parents[node])}); "
                            "pass the keys it needs, so that dvc.yaml can name them")
    return reads


def stage_script(cmd: str) -> Path:
    words = cmd.split()
    if words[1:3] == ["-m", "fewclip.pipeline.runner"]:  # the launcher: the stage script after it
        return ROOT / words[3]
    if words[1] == "-m":
        return module_file(words[2])
    return ROOT / words[1]


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_depends_on_every_module_it_runs(stage):
    spec = STAGES[stage]
    script = stage_script(spec["cmd"])
    declared = set()
    for d in map(str, spec.get("deps", [])):  # a file, or a package folder: all its modules
        if d.endswith(".py"):
            declared.add(ROOT / d)
        elif d.startswith(("fewclip/", "stages/")):
            declared |= set((ROOT / d).rglob("*.py"))
    needed = project_imports(script)
    if ROOT / "fewclip" / "pipeline" / "heads_schema.py" in needed:  # it reads the heads' source
        needed |= set((ROOT / "fewclip" / "heads").glob("*.py"))
    assert declared == needed, (f"dvc.yaml stage {stage}: missing "
                                f"{sorted(str(p.relative_to(ROOT)) for p in needed - declared)}, "
                                f"not imported {sorted(str(p.relative_to(ROOT)) for p in declared - needed)}")


# every stage but `params`, which depends on the whole file (test_the_params_stage_checks_the_whole_file)
@pytest.mark.parametrize("stage", [s for s in STAGES if STAGES[s].get("params") != [{"params.yaml": None}]])
def test_stage_depends_on_exactly_the_params_it_reads(stage):
    spec = STAGES[stage]
    declared = {p for p in spec.get("params", []) if isinstance(p, str)}
    reads = param_reads(stage_script(spec["cmd"]))
    # a key inside a group the stage declares whole (audit.head in audit) is covered by it
    covered = {r for r in reads if any(r.startswith(d + ".") for d in declared)}
    groups = {d for d in declared if any(r.startswith(d + ".") for r in reads)}
    assert declared == (reads - covered) | groups, f"dvc.yaml stage {stage}"


def test_the_params_stage_checks_the_whole_file():
    """Keys that no stage reads are checked too: one stage depends on all of params.yaml."""
    spec = STAGES["params"]
    assert spec["params"] == [{"params.yaml": None}] and "fewclip.pipeline.check" in spec["cmd"]


def test_package_modules_take_values_not_the_params_file():
    """Only stage scripts (and the params stage's check) read params.yaml, so the reads above
    are all the reads."""
    for path in (ROOT / "fewclip").rglob("*.py"):
        if path.parent.name != "pipeline":
            assert "load_params" not in path.read_text(), path


def test_the_source_declarations_are_the_registered_heads_settings():
    """The params check reads the heads' signatures from their source (no torch); at run time
    `Head.settings()` reads them from the classes: the same names, kinds and defaults."""
    declared = declared_heads()
    assert list(declared) == list(HEADS)
    for name, cls in HEADS.items():
        assert declared[name] == cls.settings(), name


def test_the_schema_knows_exactly_the_registered_heads():
    full = schema(declared_heads())
    assert [f.alias for f in full.model_fields["heads"].annotation.model_fields.values()] == list(HEADS)
    for name, cls in HEADS.items():
        group = full.model_fields["heads"].annotation.model_fields[name.replace("-", "_")].annotation
        assert list(group.model_fields) == list(cls.settings()), name
    assert list(load_params(ROOT / "params.yaml", declared_heads())["heads"]) == list(HEADS)


def test_every_stage_but_params_has_its_reads_checked():
    assert [s for s in STAGES if STAGES[s].get("params") == [{"params.yaml": None}]] == ["params"]


def test_the_derivation_sees_what_it_must():
    """The helpers themselves, on a stage written for the purpose."""
    src = ROOT / "stages" / "train.py"
    assert {"mode", "head", "heads.${head}", "seed", "gzsl.seen_bias"} <= param_reads(src)
    assert ROOT / "fewclip" / "__init__.py" in project_imports(src)
    assert ROOT / "fewclip" / "features.py" in project_imports(src)
