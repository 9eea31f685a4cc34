"""The Terraform plan JSON source, and its agreement with the HCL source on the same configuration."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import FIXTURES, corpus_path
from iamgate.judge.grants import compute
from iamgate.sources import Workspace, scan
from iamgate.sources.terraform.configuration import TerraformSource
from iamgate.sources.terraform.plan import TerraformPlanSource

PLAN_FIXTURE = FIXTURES / "terraform" / "plan"
VALIDATOR = ("terraform", "awslabs", "terraform-iam-policy-validator", "iam_check", "test")
PAIRS = ["iam_policy", "identity_policies", "multiple_policies", "no_access_granted", "public_access",
         "role_inline_assume_policy"]


def hcl(*paths):
    return TerraformSource().collect(Workspace([str(p) for p in paths]))


def plan(*paths):
    return TerraformPlanSource().collect(Workspace([str(p) for p in paths]))


def grants(result, catalog) -> dict:
    """principal id -> (kind, name, expanded granted actions)."""
    return {p.id: (p.kind, p.name, sorted(compute(p, catalog).actions)) for p in result.principals}


def assert_agree(from_hcl, from_plan, catalog):
    a, b = grants(from_hcl, catalog), grants(from_plan, catalog)
    assert a == b
    return a


@pytest.mark.parametrize("pair", PAIRS)
def test_policy_validator_pairs_agree(pair, catalog):
    folder = corpus_path(*VALIDATOR, pair)
    from_hcl, from_plan = hcl(folder / "test.tf"), plan(folder / "test_plan.json")
    assert not from_hcl.errors and not from_plan.errors
    assert not from_hcl.unresolved and not from_plan.unresolved
    assert assert_agree(from_hcl, from_plan, catalog)


def test_policy_validator_identity_pair_content(catalog):
    folder = corpus_path(*VALIDATOR, "identity_policies")
    got = grants(plan(folder / "test_plan.json"), catalog)
    assert set(got) == {"aws_iam_role.test_role", "aws_iam_role.example", "aws_iam_user.lb",
                        "aws_iam_group.my_developers", "aws_iam_policy.policy"}
    kind, name, actions = got["aws_iam_role.example"]
    assert (kind, name) == ("role", "yak_role")
    assert {a.split(":")[1][:6] for a in actions} == {"accept", "applys"}


def test_hand_written_plan_agrees_with_its_configuration(catalog):
    """Child module, count instance, apply-time policy ARN and an apply-time policy document."""
    from_hcl, from_plan = hcl(PLAN_FIXTURE), plan(PLAN_FIXTURE / "plan.json")
    both = assert_agree(from_hcl, from_plan, catalog)
    assert both["module.app.aws_iam_role.this[0]"] == ("role", "app-", ["sqs:receivemessage", "sqs:sendmessage"])
    assert both["aws_iam_role.root"][2] == ["s3:putobject"]
    prefix = next(p for p in from_plan.principals if p.id == "module.app.aws_iam_role.this[0]")
    assert prefix.name_is_prefix
    assert str(prefix.location) == f"{Workspace([]).rel(PLAN_FIXTURE / 'plan.json')}:66"


def test_plan_json_is_found_by_content_not_name(tmp_path):
    shutil.copy(PLAN_FIXTURE / "plan.json", tmp_path / "output.json")
    (tmp_path / "other.json").write_text('{"format_version": "1.0", "something": 1}')
    ws = Workspace([str(tmp_path)], base=str(tmp_path))
    result = scan(ws)
    assert {p.id: p.source for p in result.principals} == {
        "aws_iam_role.root": "terraform-plan", "module.app.aws_iam_role.this[0]": "terraform-plan"}
    assert ws.is_claimed(tmp_path / "output.json") and not ws.is_claimed(tmp_path / "other.json")


def test_broken_plan_is_a_located_error(tmp_path):
    text = (PLAN_FIXTURE / "plan.json").read_text()
    (tmp_path / "plan.json").write_text(text[:len(text) // 2])
    result = plan(tmp_path)
    assert len(result.errors) == 1 and result.errors[0].line and "invalid JSON" in result.errors[0].message


def test_apply_time_policy_without_a_known_source_is_unresolved(tmp_path):
    doc = json.loads((PLAN_FIXTURE / "plan.json").read_text())
    # the root policy no longer names a document the plan holds: nothing to rebuild it from
    exprs = doc["configuration"]["root_module"]["resources"][1]["expressions"]
    exprs["policy"] = {"references": ["aws_s3_bucket.logs.policy", "aws_s3_bucket.logs"]}
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    result = plan(tmp_path / "plan.json")
    root = next(p for p in result.principals if p.id == "aws_iam_role.root")
    assert root.policies[0].statements == ()
    notes = [u for u in result.unresolved if u.principal_id == "aws_iam_role.root"]
    assert len(notes) == 1 and "policy document cannot be resolved" in notes[0].message


@pytest.mark.parametrize("name", ["admin_policy_infra", "user_attached_policy_infra"])
def test_regula_plans_agree_with_their_configuration(name, catalog):
    inputs = corpus_path("terraform", "fugue", "regula", "rego", "tests", "rules", "tf", "aws", "iam", "inputs")
    from_hcl, from_plan = hcl(inputs / f"{name}.tf"), plan(inputs / f"{name}.json")
    assert_agree(from_hcl, from_plan, catalog)
    assert len(from_plan.principals) >= 5


def test_regula_plans_from_terraform_0_12_to_1_0_are_read():
    regula = corpus_path("terraform", "fugue", "regula")
    files = sorted(regula.rglob("*.json"))
    ws = Workspace([str(f) for f in files])
    result = TerraformPlanSource().collect(ws)
    plans = [f for f in files if ws.is_claimed(f)]
    versions = {json.loads(f.read_text()).get("terraform_version", "")[:4] for f in plans}
    assert {"0.12", "0.13", "0.14", "0.15", "1.0."} <= versions
    assert len(plans) >= 40
    assert all(e.line for e in result.errors)
    assert len(result.principals) >= 15
