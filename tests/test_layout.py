"""The folder list is the architecture: sources -> usage -> judge -> checks -> formats, then fix;
the CLI's commands and the GitHub Action run them, and nothing imports upwards."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("sources", "usage", "judge", "checks", "formats", "fix")
ENTRY_POINTS = ("commands", "action")  # run the pipeline; may import any stage
# The spine every stage may use: data model, config, plug-in registries, AWS reference data, tiny utilities.
SPINE = {"iamgate", "iamgate.model", "iamgate.config", "iamgate.registry", "iamgate.errors", "iamgate.files",
         "iamgate.escape", "iamgate.words", "iamgate.repo"}
# What runs the stages: no stage imports these.
TOP = {"iamgate.cli", "iamgate.pipeline", "iamgate.diff", "iamgate.history", "iamgate.gitlog", "iamgate.__main__"}
TOP_LEVEL_MODULES = {name.rpartition(".")[2] for name in SPINE | TOP} | {"__init__"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "checks":
        parts = ["iamgate", "checks", *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_files():
    files = sorted((ROOT / "iamgate").rglob("*.py")) + sorted((ROOT / "checks").glob("*.py"))
    return [f for f in files if "__pycache__" not in f.parts]


def imports(path: Path):
    """(line, imported iamgate module) for every import, at any depth (lazy ones too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                yield node.lineno, f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "iamgate":
        return None
    if len(parts) > 1 and parts[1] in STAGES:
        return parts[1]
    if len(parts) > 1 and parts[1] in ENTRY_POINTS or ".".join(parts[:2]) in TOP:
        return "top"
    return "spine"


def test_no_stage_imports_a_later_stage_or_what_runs_it():
    wrong = []
    for path in package_files():
        own = layer(module_name(path))
        if own not in STAGES:
            continue
        for line, target in imports(path):
            other = layer(target)
            if other == "top" or (other in STAGES and STAGES.index(other) > STAGES.index(own)):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {own} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_reference_data_imports_no_stage():
    wrong = [f"{p.relative_to(ROOT)}:{line}: {t}" for p in (ROOT / "iamgate" / "reference").glob("*.py")
             for line, t in imports(p) if layer(t) not in (None, "spine")]
    assert not wrong, "\n".join(wrong)


def test_the_top_level_is_the_spine_and_one_folder_per_stage():
    modules = {p.stem for p in (ROOT / "iamgate").glob("*.py")}
    assert modules <= TOP_LEVEL_MODULES, modules - TOP_LEVEL_MODULES
    folders = {p.name for p in (ROOT / "iamgate").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(STAGES) - {"checks"} | set(ENTRY_POINTS) | {"reference", "data"}


@pytest.mark.parametrize("path", package_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small(path):
    assert len(path.read_text().splitlines()) <= 550, "split it by responsibility"


def test_entrypoint_is_a_thin_adapter():
    text = (ROOT / "entrypoint.py").read_text()
    assert len(text.splitlines()) < 40 and "from iamgate.action import main" in text
