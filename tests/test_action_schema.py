"""action.yml and the workflows against the SchemaStore schemas vendored in check-jsonschema,
plus the action's own rules: inputs only through `env:`, no `${{ }}` in `run:`, pinned sub-actions."""
from __future__ import annotations

import json
import re
from importlib import resources

import jsonschema
import pytest

from iamgate.sources.loaders import load_yaml

from conftest import ROOT

ACTION = ROOT / "action.yml"
OWN_WORKFLOWS = [ROOT / ".github/workflows/ci.yml", ROOT / "examples/workflows/pr-gate.yml",
                 ROOT / "examples/workflows/fork-commenter.yml"]
ALL_WORKFLOWS = sorted({*OWN_WORKFLOWS, *(ROOT / ".github/workflows").glob("*.yml"),
                        *(ROOT / "examples/workflows").glob("*.yml")})
ISSUE_INPUTS = {"paths": ".", "baselines": "", "config": "", "fail-on": "", "soft-fail": "false",
                "diff-only": "true", "comment": "update", "sarif-file": "", "annotations": "true",
                "github-token": "${{ github.token }}", "config-from": "base", "require-usage-data": "false",
                "data-dir": "", "min-observation": "", "max-idle": "", "deploy-lag": "",  # these three: issue 20/22
                "report-json-version": "2"}
ISSUE_OUTPUTS = {"result", "findings", "new-findings", "unused-actions", "report-json", "sarif-file"}
SHA_PIN = re.compile(r"^\s*-?\s*uses:\s*(\S+)@([0-9a-f]{40}) # v\d")


def vendored_schema(name: str) -> dict:
    return json.loads(resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(name).read_text())


def validate(doc, schema_name: str) -> list[str]:
    schema = vendored_schema(schema_name)
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def action() -> dict:
    return load_yaml(ACTION.read_text())


def test_the_yaml_loader_keeps_on_as_a_key():
    for wf in ALL_WORKFLOWS:
        assert "on" in load_yaml(wf.read_text()), wf


def test_action_yml_validates_against_schemastore():
    assert validate(action(), "github-actions.json") == []


@pytest.mark.parametrize("workflow", ALL_WORKFLOWS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_workflow_validates_against_schemastore(workflow):
    assert validate(load_yaml(workflow.read_text()), "github-workflows.json") == []


def test_the_schemas_do_reject_a_broken_action_and_workflow():
    broken = {**action(), "runs": {"using": "composite", "steps": [{"run": "true"}]}}  # a run step needs shell
    assert validate(broken, "github-actions.json")
    assert validate({"on": "push", "jobs": {"x": {"steps": []}}}, "github-workflows.json")  # no runs-on


def test_inputs_and_outputs_are_the_issues_with_quoted_defaults():
    a = action()
    assert a["runs"]["using"] == "composite"
    assert {k: v["default"] for k, v in a["inputs"].items()} == ISSUE_INPUTS
    assert ISSUE_OUTPUTS <= set(a["outputs"])
    for line in ACTION.read_text().splitlines():
        if line.strip().startswith("default:"):
            assert re.fullmatch(r'\s*default: "[^"]*"', line), line


def test_every_input_reaches_the_script_only_through_env():
    a = action()
    steps = a["runs"]["steps"]
    script = [s for s in steps if "entrypoint.py" in s.get("run", "")]
    assert len(script) == 1
    env = script[0]["env"]
    entrypoint = "".join(p.read_text() for p in (ROOT / "iamgate" / "action").glob("*.py"))
    for name in a["inputs"]:
        var = "INPUT_" + name.upper().replace("-", "_")
        assert env[var] == f"${{{{ inputs.{name} }}}}", var
        assert f'"{var}"' in entrypoint, f"iamgate/action never reads {var}"
    referenced = set(re.findall(r"inputs\.([a-z-]+)", ACTION.read_text()))
    assert referenced == set(a["inputs"])  # and inputs are used nowhere else
    for name, out in a["outputs"].items():
        assert out["value"] == f"${{{{ steps.{script[0]['id']}.outputs.{name} }}}}"
        assert f'"{name}"' in entrypoint, f"iamgate/action never writes output {name}"


@pytest.mark.parametrize("path", [ACTION, *OWN_WORKFLOWS], ids=lambda p: p.name)
def test_no_expression_inside_run(path):
    doc = load_yaml(path.read_text())
    steps = doc["runs"]["steps"] if "runs" in doc else [s for j in doc["jobs"].values() for s in j.get("steps", [])]
    runs = [s["run"] for s in steps if "run" in s]
    assert runs
    for run in runs:
        assert "${{" not in run, run


@pytest.mark.parametrize("path", [ACTION, *OWN_WORKFLOWS], ids=lambda p: p.name)
def test_sub_actions_are_pinned_by_commit_sha(path):
    uses = [line for line in path.read_text().splitlines() if re.match(r"^\s*-?\s*uses:", line)]
    assert uses or path.name == "fork-commenter.yml"  # that one needs no action: `gh` does it all
    for line in uses:
        assert line.split("uses:")[1].strip().startswith("./") or SHA_PIN.match(line), line


def test_setup_python_does_not_touch_the_environment_and_requirements_are_hash_locked():
    steps = action()["runs"]["steps"]
    setup = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert setup and setup[0]["with"]["update-environment"] is False
    install = next(s["run"] for s in steps if "pip install" in s.get("run", ""))
    assert "--require-hashes" in install and "$RUNNER_TEMP" in install and "--no-deps" in install
    lock = (ROOT / "requirements/action.txt").read_text()
    pins = re.findall(r"^([a-z0-9_.-]+)==(\S+) \\$", lock, re.M)
    assert {"boto3", "pyyaml", "jsonschema", "python-hcl2", "aws-sam-translator", "setuptools"} <= {p for p, _ in pins}
    for block in re.split(r"\n(?=[a-z])", lock):
        if re.match(r"[a-z0-9_.-]+==", block):
            assert "--hash=sha256:" in block, block.splitlines()[0]
    declared = re.findall(r'^\s+"([A-Za-z0-9_.-]+)[><=]', (ROOT / "pyproject.toml").read_text().split(
        "[project.optional-dependencies]")[0], re.M)
    assert {d.lower() for d in declared} <= {p for p, _ in pins}  # every runtime dependency is locked
