"""Every command's own lines on stderr and stdout (errors, notes, progress) quote the scanned code or
logs through `iamgate.escape.terminal`, as `cli.py` does: an ESC sequence in a name is shown, never run."""
from __future__ import annotations

import io
import json

import pytest

from conftest import cli_in_process
from fixtures.aws.helpers import ACCOUNT, aws_env, moto_server

ESC = "\x1b]0;pwned\x07\x1b[2J"  # set the window title, clear the screen
SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J"


def assert_escaped(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text
    assert SHOWN in text


def test_managed_policies_fetch_escapes_file_names(tmp_path, monkeypatch):
    (tmp_path / f"bad{ESC}.yaml").write_text('AWSTemplateFormatVersion: "2010-09-09"\nResources: [\n')
    (tmp_path / f"app{ESC}.json").write_text(json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": {
        "R": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []},
            "ManagedPolicyArns": [f"arn:aws:iam::{ACCOUNT}:policy/missing"]}}}}))
    with moto_server() as url:
        aws_env(monkeypatch, url)
        r = cli_in_process("managed-policies", "fetch", ".", "--managed-policies", str(tmp_path / f"cache{ESC}"),
                           cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert_escaped(r.stderr)
    assert f"bad{SHOWN}.yaml" in r.stderr
    assert f"app{SHOWN}.json:1: managed policy arn:aws:iam::{ACCOUNT}:policy/missing: NoSuchEntity" in r.stderr
    assert f"cache{SHOWN}" in r.stderr


def test_usage_cloudtrail_escapes_log_file_names_and_event_names(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    record = {"eventVersion": "1.08", "eventSource": "ec2.amazonaws.com", "eventName": f"Describe{ESC}",
              "eventTime": "2024-01-01T00:00:00Z", "awsRegion": "us-east-1",
              "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/bob"}}
    (logs / "ok.json").write_text(json.dumps({"Records": [record]}))
    (logs / f"broken{ESC}.json").write_text('{"Records": [\n{"eventName": \n')
    r = cli_in_process("usage", "cloudtrail", str(logs), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert_escaped(r.stderr)
    assert f"broken{SHOWN}.json" in r.stderr
    assert "\x1b" not in r.stdout


def test_baseline_progress_escapes_what_it_quotes():
    from iamgate.commands.baseline import Progress
    for live in (False, True):
        out = io.StringIO()
        progress = Progress(out, live=live)
        progress.note(f"infra/app.yaml#Role{ESC}: not resolved")
        progress.status(f"arn:aws:iam::{ACCOUNT}:role/r{ESC}", "running", 3)
        text = out.getvalue()
        if live:  # the live line's own cursor control, and nothing else
            text = text.replace("\r\x1b[K", "")
        assert_escaped(text)


def test_expand_escapes_an_unknown_pattern():
    r = cli_in_process("expand", f"s3:Get{ESC}", cwd=".")
    assert r.returncode == 2
    assert_escaped(r.stderr.replace("[2j", "[2J"))  # the pattern is shown lowercased
