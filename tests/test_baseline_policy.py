"""The baseline job's own least privilege: the policy in docs/aws-baselines.md is the generated one,
uses only catalog actions, and covers every AWS API call the code can make. Also the client factory
(standard retries, endpoints from the environment) and the example workflow."""
from __future__ import annotations

import ast
import json
import re

import botocore.session
import pytest
import yaml
from botocore import xform_name

from conftest import ROOT
from fixtures.aws.helpers import aws_env
from iamgate.usage.aws_clients import API_CALLS, Clients, iam_action
from iamgate.reference.catalog import glob_match
from iamgate.commands.baseline import job_policy
from iamgate.judge.verdicts import Observability

DOC = ROOT / "docs" / "aws-baselines.md"
WORKFLOW = ROOT / "examples" / "workflows" / "baseline-refresh.yml"
AWS_MODULES = ["iamgate/usage/aws_clients.py", "iamgate/usage/principal_arns.py", "iamgate/usage/access_analyzer.py",
               "iamgate/usage/last_accessed.py", "iamgate/commands/baseline.py",
               "iamgate/commands/managed_policies.py"]


def doc_block(marker: str, doc=DOC) -> dict:
    text = doc.read_text()
    m = re.search(re.escape(marker) + r"[^\n]*\n```json\n(.*?)\n```", text, re.S)
    assert m, f"no JSON block after {marker} in {doc}"
    return json.loads(m.group(1))


def allows(policy: dict, action: str) -> bool:
    for st in policy["Statement"]:
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if st["Effect"] == "Allow" and any(glob_match(a.lower(), action.lower()) for a in acts):
            return True
    return False


def test_documented_policy_is_the_generated_one(catalog):
    assert doc_block("<!-- iamgate:job-policy") == job_policy(catalog)
    readme = ROOT / "README.md"
    assert doc_block("<!-- iamgate:job-policy", readme) == job_policy(catalog)
    assert doc_block("<!-- iamgate:trust-policy", readme) == doc_block("<!-- iamgate:trust-policy")


def test_policy_covers_every_api_call_and_only_catalog_actions(catalog):
    policy = doc_block("<!-- iamgate:job-policy")
    obs = Observability(catalog)
    for service, op in API_CALLS:
        action = iam_action(service, op).lower()
        assert action in catalog, action
        permissionless = getattr(obs.by_action.get(action), "reason", None) == "permissionless"
        assert allows(policy, action) or permissionless, f"{action} is not allowed by {DOC.name}"
    for st in policy["Statement"]:
        for a in st["Action"] if isinstance(st["Action"], list) else [st["Action"]]:
            assert a.lower() in catalog and "*" not in a, a
    pass_role = [st for st in policy["Statement"] if st["Action"] == "iam:PassRole"]
    assert pass_role and pass_role[0]["Resource"] != "*"
    assert pass_role[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "access-analyzer.amazonaws.com"}}


def code_calls() -> set[tuple[str, str]]:
    """Every `<x>.<operation>(...)` in the AWS modules that names an operation of a service we use."""
    session = botocore.session.get_session()
    ops: dict[str, set[tuple[str, str]]] = {}
    for service in {"iam", "sts", "cloudformation", "accessanalyzer", "s3", "cloudtrail"}:
        model = session.get_service_model(service)
        for op in model.operation_names:
            ops.setdefault(xform_name(op), set()).add((service, op))
    found = set()
    for rel in AWS_MODULES:
        for node in ast.walk(ast.parse((ROOT / rel).read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ops:
                found.add(node.attr)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get_paginator":
                found.add(xform_name(node.args[0].value))
    return {call for name in found for call in ops[name]}


def test_every_call_in_the_code_is_listed():
    listed = set(API_CALLS)
    calls = code_calls()
    for call in calls:
        same_name = {c for c in calls if xform_name(c[1]) == xform_name(call[1])}
        assert same_name & listed, f"{call} is called in the code but missing from iamgate.usage.aws_clients.API_CALLS"
    assert {xform_name(op) for _, op in API_CALLS} == {xform_name(op) for _, op in calls}


def test_clients_use_standard_retries_and_endpoints_from_the_environment(monkeypatch):
    aws_env(monkeypatch, "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ENDPOINT_URL_ACCESSANALYZER", "http://127.0.0.1:4599")
    clients = Clients("eu-west-1")
    aa = clients.client("accessanalyzer")
    assert aa.meta.endpoint_url == "http://127.0.0.1:4599"
    assert clients.client("iam").meta.endpoint_url == "http://127.0.0.1:4566"
    assert aa.meta.config.retries["mode"] == "standard" and aa.meta.region_name == "eu-west-1"
    assert clients.client("iam", "last-accessed") is not clients.client("iam")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    from iamgate.commands import UsageError
    assert Clients().client("iam").meta.region_name == "us-east-1"  # IAM is global
    with pytest.raises(UsageError, match="no AWS region"):
        Clients().client("accessanalyzer")


def test_trust_policy_pins_repository_environment_and_audience():
    trust = doc_block("<!-- iamgate:trust-policy")
    (st,) = trust["Statement"]
    assert st["Action"] == "sts:AssumeRoleWithWebIdentity"
    cond = st["Condition"]["StringEquals"]
    assert cond["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert cond["token.actions.githubusercontent.com:sub"].startswith("repo:OWNER/REPO:environment:")


@pytest.mark.parametrize("workflow", [WORKFLOW, WORKFLOW.with_name("baseline-refresh-accounts.yml")],
                         ids=lambda p: p.name)
def test_workflow_is_scheduled_pinned_and_uses_oidc(workflow):
    text = workflow.read_text()
    wf = yaml.safe_load(text)
    triggers = wf[True]  # YAML 1.1 reads `on` as true
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    job = wf["jobs"]["baselines"]
    assert job["permissions"]["id-token"] == "write"
    env_name = job["environment"]
    assert doc_block("<!-- iamgate:trust-policy")["Statement"][0]["Condition"]["StringEquals"][
        "token.actions.githubusercontent.com:sub"].endswith(f":environment:{env_name}")
    uses = re.findall(r"uses: (\S+)(.*)", text)
    assert any(u.startswith("aws-actions/configure-aws-credentials@") for u, _ in uses)
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.match(r"\s+# v\d", comment), f"{action}: no # vN comment"
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert "iamgate baseline" in runs and "--access-role" in runs and "--trail" in runs
    assert any("upload-artifact" in s.get("uses", "") for s in job["steps"])


def test_workflow_credentials_cover_the_timeout_and_the_docs_name_max_session_duration():
    """GitHub OIDC credentials last an hour by default; the documented run may take --timeout."""
    from iamgate.commands.baseline import parse_duration
    wf = yaml.safe_load(WORKFLOW.read_text())
    steps = wf["jobs"]["baselines"]["steps"]
    creds = next(s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@"))
    run = next(s["run"] for s in steps if "iamgate baseline" in s.get("run", ""))
    timeout = parse_duration(re.search(r"--timeout (\S+)", run).group(1), "--timeout")
    assert int(creds["with"]["role-duration-seconds"]) >= timeout + 300
    assert wf["jobs"]["baselines"]["timeout-minutes"] * 60 >= timeout
    for text in (WORKFLOW.read_text(), DOC.read_text()):
        assert "MaxSessionDuration" in text and "max-session-duration" in text
    assert "role-duration-seconds" in DOC.read_text()
