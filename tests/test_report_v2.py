"""The JSON report `iamgate.report/v2` (issue 18): one table of action names, verdict -> reason -> indices,
lossless against the judge's own result, small; v1 still behind `--json-version 1` for one release."""
from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources

import jsonschema
import pytest
from conftest import cli_in_process, write_json

from iamgate.config import Config
from iamgate.formats import FORMATS
from iamgate.formats.json import expanded, verdicts_by_action
from iamgate.model import NEW, NO_DATA, TOO_RECENT, UNKNOWN
from iamgate.pipeline import analyse

SCHEMAS = resources.files("iamgate").joinpath("data/schemas")
V2 = json.loads(SCHEMAS.joinpath("report.schema.json").read_text())
V1 = json.loads(SCHEMAS.joinpath("report.v1.schema.json").read_text())


def role(name: str, *statements: dict) -> dict:
    return {"Type": "AWS::IAM::Role", "Properties": {"RoleName": name, "Policies": [{
        "PolicyName": "p", "PolicyDocument": {"Version": "2012-10-17", "Statement": list(statements)}}]}}


def allow(*actions: str) -> dict:
    return {"Effect": "Allow", "Action": list(actions), "Resource": "*"}


def baseline(name: str, used: list[str], kind: str = "cloudtrail") -> dict:
    return {"schema": "iamgate.baseline/v1", "principal_arn": f"arn:aws:iam::111122223333:role/{name}",
            "window": {"start": "2026-08-24T00:00:00Z", "end": "2026-11-22T00:00:00Z"},
            "sources": [{"kind": kind}], "data_events_observed": ["s3"],
            "used": {a: {"count": 3, "signals": [kind]} for a in used}}


def workspace(tmp_path, roles: int = 3):
    """Roles with every verdict: NotAction grants (~20,000 actions), data events, unknown patterns, a role
    without a baseline."""
    resources_ = {
        "Everything": role("everything", {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"],
                                          "Resource": "*"}, allow("iam:PassRole")),
        "Mixed": role("mixed", allow("s3:GetObject", "s3:PutObject", "sqs:SendMessage", "s3:Nope", "zzz:*"),
                      allow("dynamodb:*")),
        "NoBaseline": role("no-baseline", allow("kms:Decrypt", "logs:*")),
    }
    for n in range(3, roles):
        resources_[f"Wide{n}"] = role(f"wide-{n}", {"Effect": "Allow", "NotAction": ["iam:*"], "Resource": "*"})
    write_json(tmp_path / "infra" / "t.json", {"Resources": resources_})
    write_json(tmp_path / "b" / "everything.json", baseline("everything", ["s3:getobject", "iam:passrole"]))
    write_json(tmp_path / "b" / "mixed.json", baseline("mixed", ["dynamodb:getitem"], "access-analyzer"))
    for n in range(3, roles):
        write_json(tmp_path / "b" / f"wide-{n}.json", baseline(f"wide-{n}", ["ec2:describeinstances"]))
    return tmp_path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    ws = workspace(tmp_path_factory.mktemp("v2"))
    return analyse([str(ws / "infra")], [str(ws / "b")], Config(), base=str(ws))


@pytest.fixture(scope="module")
def doc(report):
    return json.loads(FORMATS.get("json")().render(report))


def test_v2_is_the_default_and_validates(doc):
    jsonschema.validate(doc, V2)
    assert doc["schema"] == "iamgate.report/v2"
    assert doc["actions"] == sorted(set(doc["actions"])) and all(a == a.lower() for a in doc["actions"])


def test_every_granted_actions_verdict_and_reason_survives(report, doc):
    """Lossless: read back from the indices, each principal's actions map to exactly the verdict and reason
    the judge gave them in memory, unknown patterns included."""
    got = verdicts_by_action(doc)
    for r in report.results:
        want = {a: (v, reason) for v, reasons in r.groups.items() for reason, acts in reasons.items() for a in acts}
        assert got[r.principal.id] == want, r.principal.id
    kinds = {v for r in report.results for v in r.groups}
    assert {"used", "unused", "unobservable", UNKNOWN, NO_DATA} <= kinds  # the case covers every verdict


def test_each_action_is_listed_once_and_granted_is_not_repeated(report, doc):
    for p, r in zip(doc["principals"], report.results):
        assert "actions" not in p and "reasons" not in p
        listed = [i for reasons in p["verdicts"].values() for idx in reasons.values() for i in idx]
        assert len(listed) == len(set(listed))  # one verdict and one reason per action
        names = {doc["actions"][i] for i in listed}
        assert names == set(r.granted) | {a for acts in r.groups.get(UNKNOWN, {}).values() for a in acts}
        for idx in (idx for reasons in p["verdicts"].values() for idx in reasons.values()):
            assert idx == sorted(idx)
    mixed = next(p for p in doc["principals"] if p["id"] == "Mixed")
    assert {doc["actions"][i] for i in mixed["verdicts"]["unknown"]["not in the action catalog"]} == {"s3:nope", "zzz:*"}
    assert "no_usage_data" in next(p for p in doc["principals"] if p["id"] == "NoBaseline")["verdicts"]


def test_findings_name_their_actions_through_the_table(report, doc):
    assert doc["findings"] and len(doc["findings"]) == len(report.findings)
    for f, mem in zip(doc["findings"], report.findings):
        assert [doc["actions"][i] for i in f["actions"]] == list(mem.actions)
    assert expanded(doc)["findings"][0]["actions"] == list(report.findings[0].actions)


def test_expanded_gives_v1s_lists(report, doc):
    v1 = json.loads(FORMATS.get("json")(version=1).render(report))
    jsonschema.validate(v1, V1)
    back = expanded(doc)
    for p1, p2 in zip(v1["principals"], back["principals"]):
        for key, names in p1["actions"].items():
            assert p2["actions"][key] == names, (p1["id"], key)
        for v, reasons in p1["reasons"].items():
            assert p2["reasons"][v] == reasons
    assert [f["actions"] for f in v1["findings"]] == [f["actions"] for f in back["findings"]]
    assert expanded(v1) is v1


def test_new_and_too_recent_verdicts_need_no_schema_change(report):
    """The judge's newer verdicts come out as lists of their own, under lowercase keys, and validate."""
    r = next(r for r in report.results if r.principal.id == "Mixed")
    groups = {k: dict(v) for k, v in r.groups.items()}
    used = groups.pop("used")
    groups[NEW] = {"granted by this change": frozenset(a for acts in used.values() for a in acts)}
    unused = groups.pop("unused")
    groups[TOO_RECENT] = {"watched 12 of 30 days; judgeable from 2026-12-20": frozenset(
        a for acts in unused.values() for a in acts)}
    faked = replace(report, results=(replace(r, groups=groups),))
    doc = json.loads(FORMATS.get("json")().render(faked))
    jsonschema.validate(doc, V2)
    (p,) = doc["principals"]
    assert {"new", "too_recent"} <= set(p["verdicts"])
    assert verdicts_by_action(doc)["Mixed"]["dynamodb:getitem"] == (NEW, "granted by this change")
    back = expanded(doc)["principals"][0]["actions"]
    assert "dynamodb:getitem" in back["new"] and back["too_recent"]


def test_v2_is_a_fraction_of_v1_on_notaction_grants(tmp_path):
    """Size bound on a generated case: eight roles with NotAction grants (~20,000 actions each)."""
    ws = workspace(tmp_path, roles=8)
    rep = analyse([str(ws / "infra")], [str(ws / "b")], Config(), base=str(ws))
    v2 = FORMATS.get("json")().render(rep).encode()
    v1 = FORMATS.get("json")(version=1).render(rep).encode()
    granted = sum(len(r.granted) for r in rep.results)
    assert granted > 100_000
    assert len(v2) * 5 < len(v1), (len(v2), len(v1))
    table = len(json.dumps(json.loads(v2)["actions"]))  # once per report, ~800 kB with a NotAction grant
    assert (len(v2) - table) / granted < 12  # bytes per granted action, its findings included
    assert max(map(len, v2.splitlines())) < len(v2)  # one line per principal and finding, not one blob


def test_json_version_flag(tmp_path):
    ws = workspace(tmp_path)
    args = ("check", "infra", "--baselines", "b", "--format", "json", "--fail-on", "never")
    r1 = cli_in_process(*args, "--json-version", "1", cwd=ws)
    assert r1.returncode == 0, r1.stderr
    v1 = json.loads(r1.stdout)
    jsonschema.validate(v1, V1)
    assert v1["schema"] == "iamgate.report/v1" and "granted" in v1["principals"][0]["actions"]
    r2 = cli_in_process(*args, "--json-version", "2", cwd=ws)
    assert json.loads(r2.stdout)["schema"] == "iamgate.report/v2"
    bad = cli_in_process("check", "infra", "--json-version", "1", cwd=ws)
    assert bad.returncode == 2 and "--json-version applies to --format json" in bad.stderr
    with pytest.raises(SystemExit) as e:  # argparse's own usage error
        cli_in_process(*args, "--json-version", "3", cwd=ws)
    assert e.value.code == 2
