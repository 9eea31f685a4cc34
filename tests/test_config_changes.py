"""iamgate.action.config_changes: which changes to the gate's configuration weaken it."""
from __future__ import annotations

import datetime as dt

import pytest

from iamgate.reference.catalog import load_catalog
from iamgate.config import AllowEntry, Config, parse
from iamgate.action.config_changes import compare, data_changes, markdown


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def kinds(changes) -> list[tuple[str, str]]:
    return [(w.kind, w.subject) for w in changes]


def test_no_change_and_stricter_changes_are_not_weakenings(cat):
    base = parse({"fail-on": "high", "disable": ["unknown-actions"], "severity": {"no-usage-data": "low"},
                  "allowlist": [{"action": "s3:*", "reason": "ops"}], "unobservable": ["s3:Get*"]})
    assert compare(base, base, cat) == []
    stricter = parse({"fail-on": "medium", "severity": {"no-usage-data": "high"},
                      "allowlist": [{"action": "s3:GetObject", "reason": "ops"}], "unobservable": ["s3:GetObject"]})
    assert compare(base, stricter, cat) == []


def test_disabled_checks_and_lowered_severities(cat):
    base = parse({"severity": {"no-usage-data": "high"}})
    head = parse({"disable": ["resource-exposure", "passrole-wildcard"],
                  "severity": {"unused-actions": "low", "admin-wildcard": "critical"}})
    got = compare(base, head, cat)
    assert kinds(got) == [("check-disabled", "resource-exposure"), ("check-disabled", "passrole-wildcard"),
                          ("severity-lowered", "no-usage-data"), ("severity-lowered", "unused-actions")]
    assert got[2].detail == "high → info"  # dropping the base's override lowers it back to the default
    assert got[3].detail == "medium → low"


def test_fail_on_raised_including_never(cat):
    assert kinds(compare(Config(fail_on="medium"), Config(fail_on="never"), cat)) == [("fail-on-raised", "fail-on")]
    assert compare(Config(fail_on="never"), Config(fail_on="critical"), cat) == []


def test_allowlist_entries_added_and_widened(cat):
    base = Config(allowlist=(AllowEntry("s3:GetObject", "reads", "app-*", dt.date(2027, 1, 1)),
                             AllowEntry("sqs:*", "queues")))
    head = Config(allowlist=(
        AllowEntry("s3:GetObject", "reads", "app-*", dt.date(2027, 1, 1)),  # unchanged
        AllowEntry("sqs:SendMessage", "narrower", "app-1"),  # covered by sqs:* for *
        AllowEntry("s3:Get*", "reads", "app-*", dt.date(2027, 1, 1)),  # widened: more actions
        AllowEntry("s3:GetObject", "reads", "*", dt.date(2027, 1, 1)),  # widened: every principal
        AllowEntry("s3:GetObject", "reads", "app-*", None),  # widened: never expires
        AllowEntry("kms:Decrypt", "new", "batch"),  # added
    ))
    got = compare(base, head, cat)
    assert kinds(got) == [("allowlist-widened", "s3:Get* for app-* until 2027-01-01"),
                          ("allowlist-widened", "s3:GetObject for * until 2027-01-01"),
                          ("allowlist-widened", "s3:GetObject for app-*"),
                          ("allowlist-added", "kms:Decrypt for batch")]
    assert got[0].detail.startswith("allows ") and "more actions" in got[0].detail


def test_actions_declared_unobservable(cat):
    base = Config(unobservable=("s3:Get*",))
    head = Config(unobservable=("s3:Get*", "s3:GetObject", "iam:*", "madeup:Thing"))
    got = compare(base, head, cat)
    assert kinds(got) == [("unobservable-added", "iam:*"), ("unobservable-added", "madeup:Thing")]
    assert "no longer judged unused" in got[0].detail


def test_require_usage_data_switched_off(cat):
    assert kinds(compare(Config(require_usage_data=True), Config(), cat)) == [
        ("require-usage-data-off", "require-usage-data")]


def test_markdown_escapes_and_says_when_it_applies(cat):
    changes = compare(Config(), Config(disable=("x`</details>\n\n# hi",)), cat, defaults={})
    changes += data_changes([".iamgate/managed-policies/aws/AdministratorAccess.json"])
    text = markdown(changes)
    assert "apply after the merge, not to this PR" in text
    assert "\n\n# hi" not in text and "</details>" not in text.replace("`x'</details>", "")
    assert "- trusted data file changed: `.iamgate/managed-policies/aws/AdministratorAccess.json`" in text
    assert "applies to this PR" in markdown(changes, "head")
    assert markdown([]) == ""


def test_remapped_principals_changed_parameters_and_moved_data_paths(cat):
    """A PR that points a role at an admin's baseline, flips a CloudFormation Condition through a
    parameter, or moves the managed-policy cache to a folder it writes, hides grants after the merge."""
    base = parse({"principals": {"AppRole": "arn:aws:iam::111122223333:role/app"}, "parameters": {"Env": "prod"},
                  "managed-policies": ".iamgate/managed-policies"})
    head = parse({"principals": {"AppRole": "arn:aws:iam::111122223333:role/admin", "NewRole": "admin"},
                  "parameters": {"Env": "dev"}, "managed-policies": "infra/cache", "baselines": "infra/usage"})
    assert kinds(compare(base, head, cat)) == [
        ("principal-mapped", "AppRole"), ("principal-mapped", "NewRole"), ("parameter-changed", "Env"),
        ("data-path-changed", "baselines"), ("data-path-changed", "managed-policies")]
    assert compare(head, head, cat) == []
    assert compare(head, base, cat)[0].kind == "principal-mapped"  # a mapping changed back is a change too


def test_log_lines_show_escape_sequences_instead_of_colouring_the_step_log(cat):
    from iamgate.action.config_changes import log_lines
    head = parse({"allowlist": [{"action": "s3:Get*\x1b[8m", "reason": "hidden\x1b[0m"}]})
    (line,) = log_lines(compare(Config(), head, cat))
    assert "\x1b" not in line and "\\x1b[8m" in line
