"""`iamgate managed-policies fetch` against a moto server (AWS managed policies loaded, a customer
managed policy with two versions), then `iamgate check` expanding them offline."""
from __future__ import annotations

import json

import pytest

from conftest import ROOT, run_cli
from fixtures.aws.helpers import ACCOUNT, SAFE_ENV, aws_env, moto_server
from iamgate.cli import main
from iamgate.reference.managed_policies import ManagedPolicyCache
from iamgate.formats.json import expanded

TEMPLATE = "tests/fixtures/aws/app/template.yaml"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/team-boundary"
S3_READ = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"


@pytest.fixture(scope="module")
def server():
    with moto_server(load_managed_policies=True) as url:
        import boto3
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")
        doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:CreateLogGroup",
                                                       "Resource": "*"}]}
        iam.create_policy(PolicyName="team-boundary", PolicyDocument=json.dumps(doc))
        doc["Statement"][0]["Action"] = ["logs:PutLogEvents", "logs:CreateLogStream"]
        iam.create_policy_version(PolicyArn=BOUNDARY, PolicyDocument=json.dumps(doc), SetAsDefault=True)
        yield url


def test_fetch_then_check_expands_offline(server, tmp_path, monkeypatch, capsys):
    aws_env(monkeypatch, server)
    monkeypatch.chdir(ROOT)
    cache = tmp_path / "managed"
    assert main(["managed-policies", "fetch", TEMPLATE, "--managed-policies", str(cache)]) == 0
    assert "fetched 2 of 2 managed policies" in capsys.readouterr().err
    stored = json.loads((cache / ACCOUNT / "team-boundary.json").read_text())
    assert stored["version_id"] == "v2"  # the default version, not the first
    assert stored["document"]["Statement"][0]["Action"] == ["logs:PutLogEvents", "logs:CreateLogStream"]
    s3 = ManagedPolicyCache(cache).get(S3_READ)
    assert "s3:Get*" in s3["Statement"][0]["Action"]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name.startswith(".")) == []  # no temp files left

    # offline: no endpoint answers now, and check still expands both policies
    env = {**SAFE_ENV, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    r = run_cli("check", TEMPLATE, "--managed-policies", str(cache), "--param", f"AWS::AccountId={ACCOUNT}",
                "--format", "json", "--fail-on", "never", cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    report = expanded(json.loads(r.stdout))
    ingest = next(p for p in report["principals"] if p["id"] == "IngestRole")
    granted = set(ingest["actions"]["granted"])
    assert {"logs:putlogevents", "logs:createlogstream", "s3:getobject", "s3:listbucket"} <= granted
    assert "logs:createloggroup" not in granted
    assert not [u for u in report["unresolved"] if "managed-policy cache" in u["message"]]


def test_missing_policy_is_a_located_error_and_the_rest_is_fetched(server, tmp_path, monkeypatch, capsys):
    aws_env(monkeypatch, server)
    monkeypatch.chdir(ROOT)
    cache = tmp_path / "managed"
    missing = f"arn:aws:iam::{ACCOUNT}:policy/not-there"
    rc = main(["managed-policies", "fetch", TEMPLATE, "--managed-policies", str(cache), "--arn", missing])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"iamgate: {missing}: managed policy {missing}: NoSuchEntity" in err
    assert "fetched 2 of 3" in err and ManagedPolicyCache(cache).get(BOUNDARY)


def test_usage_errors_exit_2_without_traceback(server, tmp_path, monkeypatch, capsys):
    aws_env(monkeypatch, server)
    assert main(["managed-policies", "fetch", "--arn", "AmazonS3ReadOnlyAccess"]) == 2
    assert "not a managed policy ARN" in capsys.readouterr().err
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.chdir(ROOT)
    assert main(["managed-policies", "fetch", TEMPLATE, "--managed-policies", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iamgate: error: AWS:") and "Traceback" not in err


def test_unwritable_cache_exits_2_without_traceback(server, tmp_path, monkeypatch, capsys):
    aws_env(monkeypatch, server)
    monkeypatch.chdir(ROOT)
    (tmp_path / "file").write_text("")
    cache = tmp_path / "file" / "managed"  # under a regular file: every write fails
    assert main(["managed-policies", "fetch", "--arn", S3_READ, "--managed-policies", str(cache),
                 "--param", f"AWS::AccountId={ACCOUNT}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"iamgate: error: managed-policy cache {cache}: cannot write") and "Traceback" not in err
    assert len(err.splitlines()) == 1
