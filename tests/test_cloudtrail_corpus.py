"""The shared corpus: every CloudTrail event is mapped or counted as unmapped; the stratus-red-team pair."""
from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import corpus_path, run_cli
from iamgate.formats.json import expanded

STRATUS = ("e2e", "DataDog", "stratus-red-team")
TECHNIQUE = "credential-access/ec2-steal-instance-credentials"


def test_corpus_parses_completely(catalog):
    from iamgate.usage.cloudtrail import CloudTrailUsage
    sources = [corpus_path("cloudtrail"), corpus_path(*STRATUS, "docs", "detonation-logs")]
    summary, errors = CloudTrailUsage([str(s) for s in sources], catalog=catalog).scan()
    # every event is accounted for: mapped, needing no IAM action, or counted as unmapped
    assert summary.events == summary.api_events + summary.no_iam_events
    assert summary.events > 850 and summary.mapped_share > 0.95
    # the only located errors are records with a malformed field, which are still counted
    assert all("ignored malformed" in e.message for e in errors)
    assert any("policy-to-guess.json: not CloudTrail" in n for n in summary.notes)
    assert any(label.startswith("ec2.amazonaws.com PutBucketVersioning") for label, _ in summary.unmapped)


@pytest.mark.skipif(importlib.util.find_spec("iamgate.sources.terraform.configuration") is None,
                    reason="needs the Terraform source (iamgate/sources/terraform.py), written in another issue")
def test_stratus_ec2_steal_instance_credentials(tmp_path):
    tf = corpus_path(*STRATUS, "v2", "internal", "attacktechniques", "aws", *TECHNIQUE.split("/"))
    log = corpus_path(*STRATUS, "docs", "detonation-logs", f"aws.{TECHNIQUE.replace('/', '.')}.json")
    # the role's name is "${var.config.aws.prefix}stratus-red-team-...-role": the known part matches it
    # the detonation log spans minutes: without `--min-observation 0d` every unseen grant is too_recent
    r = run_cli("check", str(tf), "--cloudtrail", str(log), "--format", "json", "--fail-on", "never",
                "--min-observation", "0d", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = expanded(json.loads(r.stdout))
    role = next(p for p in report["principals"] if p["id"] == "aws_iam_role.instance-role")
    assert role["baseline"]["matched_by"] == "name pattern *stratus-red-team-ec2-steal-credentials-role"
    assert role["baseline"]["sources"][0]["kind"] == "cloudtrail"
    used, unused = role["actions"]["used"], role["actions"]["unused"]
    assert used == ["ec2:describeinstances"]
    # the inline ec2:Describe*, and AmazonSSMManagedInstanceCore read from iamgate's bundle (no credentials)
    assert all(a.startswith(("ec2:describe", "ssm:", "ssmmessages:", "ec2messages:")) for a in unused)
    assert any(a.startswith("ssm:") for a in unused)
    assert report["managed_policy_bundle"]["policies"] == ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]
    assert len(unused) > 50 * len(used)  # ec2:Describe* is mostly unused
