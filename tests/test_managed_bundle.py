"""AWS managed policies offline: iamgate's dated bundle, read lazily per attached ARN; the cache wins."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import iamgate
from iamgate.reference import managed_policies as managed
from iamgate.formats.comment import comment_body, marker
from iamgate.config import Config
from iamgate.reference.managed_policies import ManagedPolicyCache
from iamgate.pipeline import analyse

from conftest import run_cli
from iamgate.formats.json import expanded

SHARED = Path(__file__).resolve().parents[2] / "shared" / "aws-managed-policies" / "policies.json"
BUNDLE = Path(iamgate.__file__).parent / "data" / managed.BUNDLE_NAME
NO_CREDENTIALS = {"AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
                  "AWS_PROFILE": "", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}


def template(*arns: str) -> str:
    listed = "".join(f"\n        - {a}" for a in arns)
    return f"""\
Resources:
  AppRole:
    Type: AWS::IAM::Role
    Properties:
      RoleName: app
      AssumeRolePolicyDocument: {{Version: "2012-10-17", Statement: []}}
      ManagedPolicyArns:{listed}
"""


def write(tmp_path, *arns) -> Path:
    infra = tmp_path / "infra"
    infra.mkdir(exist_ok=True)
    (infra / "t.yaml").write_text(template(*arns))
    return infra


def test_the_bundle_is_dated_and_cited():
    info = managed.bundle_info()
    assert info.date == "2026-08-22" and "iam-dataset" in info.source and info.count > 1500


@pytest.mark.skipif(not SHARED.is_file(), reason="../shared/aws-managed-policies is absent")
def test_the_bundle_is_the_one_the_script_builds(tmp_path):
    data = json.loads(SHARED.read_text())
    out = tmp_path / managed.BUNDLE_NAME
    managed.write_bundle(out, data["policies"], data["source"], "2026-08-22")
    assert out.read_bytes() == BUNDLE.read_bytes()


def test_administrator_access_by_arn_fails_the_gate_with_no_fetch_and_no_credentials(tmp_path):
    infra = write(tmp_path, "arn:aws:iam::aws:policy/AdministratorAccess")
    r = run_cli("check", str(infra), "--format", "json", cwd=tmp_path, env=NO_CREDENTIALS)
    assert r.returncode == 1, r.stderr
    report = expanded(json.loads(r.stdout))
    admin = [f for f in report["findings"] if f["check"] == "admin-wildcard"]
    assert admin and admin[0]["severity"] == "critical"
    assert report["managed_policy_bundle"]["date"] == "2026-08-22"
    assert report["managed_policy_bundle"]["policies"] == ["arn:aws:iam::aws:policy/AdministratorAccess"]
    assert not report["unresolved"]
    text = run_cli("check", str(infra), cwd=tmp_path, env=NO_CREDENTIALS).stdout
    assert "read from iamgate's bundled copy of 2026-08-22" in text and "AdministratorAccess" in text


@pytest.mark.parametrize("arn, expect", [
    ("arn:aws:iam::aws:policy/ReadOnlyAccess", "s3:getobject"),
    ("arn:aws:iam::aws:policy/PowerUserAccess", "ec2:runinstances"),
    ("arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole", "logs:putlogevents"),
])
def test_common_aws_managed_policies_expand_offline(tmp_path, monkeypatch, arn, expect):
    monkeypatch.chdir(tmp_path)  # no .iamgate/managed-policies here
    report = analyse([str(write(tmp_path, arn))], [], Config())
    (r,) = report.results
    assert expect in r.granted
    if arn.endswith("PowerUserAccess"):
        assert "iam:createuser" not in r.granted  # its NotAction keeps IAM out
    assert report.managed_bundle["policies"] == [arn]
    assert not report.unresolved
    body = comment_body(report, marker(None, ["infra"]), "iamgate").replace("\\", "")
    assert "bundled copy of 2026-08-22" in body and arn.rsplit("/", 1)[-1] in body
    assert "judged 0 of " in body and "without usage data" in body  # no baseline: nothing judged


def test_the_cache_wins_over_the_bundle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arn = "arn:aws:iam::aws:policy/ReadOnlyAccess"
    cache = tmp_path / "cache"
    ManagedPolicyCache(cache).put(arn, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sqs:ListQueues", "Resource": "*"}]}, "v999")
    report = analyse([str(write(tmp_path, arn))], [], Config(managed_policies=str(cache)))
    assert report.results[0].granted == {"sqs:listqueues"}
    assert report.managed_bundle == {}
    assert not any("bundled" in line for line in report.provenance())


def test_customer_managed_policies_are_never_looked_up_in_the_bundle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = analyse([str(write(tmp_path, "arn:aws:iam::111122223333:policy/ReadOnlyAccess"))], [], Config())
    assert any("not in the managed-policy cache" in u.message for u in report.unresolved)
    assert managed.bundle_member("arn:aws:iam::aws:policy/../../etc/passwd") is None


def test_a_run_without_managed_policies_never_opens_the_bundle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "p.json").write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    managed.bundle.cache_clear()
    report = analyse([str(infra)], [], Config())
    assert report.results and managed.bundle.cache_info().misses == 0


def test_an_arn_account_is_never_a_path_out_of_the_cache(tmp_path, monkeypatch):
    """The PR author writes the ARN: its account field must not name a file outside the cache."""
    monkeypatch.chdir(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps({"document": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::top-secret/*"}]}}))
    (tmp_path / "cache").mkdir()
    arns = (f"arn:aws:iam::{outside}:policy/secret", "arn:aws:iam::../outside:policy/secret")
    report = analyse([str(write(tmp_path, *arns))], [], Config(managed_policies=str(tmp_path / "cache")))
    assert not report.results[0].granted
    assert sum("not in the managed-policy cache" in u.message for u in report.unresolved) == 2
    for arn in arns:
        assert managed.policy_file(tmp_path / "cache", arn) is None
    assert managed.policy_file("c", "arn:aws:iam::111122223333:policy/team/p") == Path("c/111122223333/team/p.json")
