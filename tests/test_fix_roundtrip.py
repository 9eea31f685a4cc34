"""`iamgate fix --write` then `iamgate check`: clean for the fixed principals, and every line outside the
rewritten statements byte-identical. One fixture per source format, run in-process for speed."""
from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path

import pytest

from iamgate import cli
from iamgate.sources import Workspace, scan

from conftest import FIXTURES
from iamgate.formats.json import expanded

FIX = FIXTURES / "fix"
FORMATS = ["cfn_yaml", "cfn_json", "sam", "serverless", "policy_json", "terraform", "terraform_forms"]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def texts(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def statement_ranges(root: Path) -> list[tuple[str, int, int]]:
    """(file, first, last) for each statement: its own lines only, by braces (JSON, HCL) or by
    indentation (YAML), so a change anywhere else is caught."""
    starts: dict[str, set[int]] = {}
    for p in scan(Workspace(["infra"], base=str(root))).principals:
        for pol in p.policies:
            for st in pol.statements:
                if st.location and st.location.line:
                    starts.setdefault(st.location.file, set()).add(st.location.line)
    out = []
    for file, lines in starts.items():
        text = (root / file).read_text().splitlines()
        for line in sorted(lines):
            out.append((file, line, statement_end(text, line, yaml=file.endswith((".yaml", ".yml")))))
    return out


def statement_end(text: list[str], start: int, yaml: bool) -> int:
    """The last line of the statement that starts at `start` (1-based)."""
    first = text[start - 1]
    if yaml and "{" not in first.split("#")[0]:
        indent = len(first) - len(first.lstrip(" "))
        end = start
        for i in range(start, len(text)):
            line = text[i]
            if line.strip() and len(line) - len(line.lstrip(" ")) <= indent:
                break
            end = i + 1
        return end
    depth, seen = 0, False
    for i in range(start - 1, len(text)):
        for ch in text[i].split("#")[0] if yaml else text[i]:
            if ch in "{[":
                depth, seen = depth + 1, True
            elif ch in "}]":
                depth -= 1
        if seen and depth <= 0:
            return i + 1
    return len(text)


@pytest.fixture(params=FORMATS)
def tree(request, tmp_path, monkeypatch):
    if request.param.startswith("terraform"):
        from iamgate.sources import SOURCES
        if "terraform" not in SOURCES.all():
            pytest.skip("the Terraform source is not in this tree yet")
    root = tmp_path / request.param
    shutil.copytree(FIX / request.param, root)
    monkeypatch.chdir(root)
    return root


def test_fix_write_then_check_is_clean_and_untouched_lines_are_identical(tree, capsys):
    args = ["infra", "--baselines", "baselines", "--config", "iamgate.yml"]
    before = texts(tree)
    code, before_report, _ = run(capsys, "check", *args, "--format", "json")
    unused_before = {p["id"]: p["actions"].get("unused", []) for p in expanded(json.loads(before_report))["principals"]}
    granted_before = {p["id"]: set(p["actions"]["granted"]) for p in expanded(json.loads(before_report))["principals"]}
    assert any(unused_before.values())

    code, diff, err = run(capsys, "fix", *args)
    assert code == 0, err
    assert diff.startswith("--- a/infra/") and "\n+++ b/infra/" in diff
    assert texts(tree) == before, "without --write nothing changes"

    ranges = statement_ranges(tree)
    code, _, err = run(capsys, "fix", *args, "--write")
    assert code == 0, err
    after = texts(tree)
    changed_files = {f for f in after if after[f] != before[f]}
    assert changed_files and all(f.startswith("infra/") for f in changed_files)
    for file in changed_files:
        old = before[file].decode().splitlines(keepends=True)
        new = after[file].decode().splitlines(keepends=True)
        for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
            if tag == "equal":
                continue
            for line in range(i1 + 1, i2 + 1) if i2 > i1 else [i1]:  # an insertion: after line i1
                assert any(f == file and lo - 1 <= line <= hi for f, lo, hi in ranges), \
                    f"{file}:{line} changed outside a statement"
        for line in old:  # comments and short-form tags outside removed statements survive
            if "#" in line.split('"')[0] or line.lstrip().startswith(("- !", "!")) or ": !" in line:
                assert line in new, f"lost: {line!r}"

    code, report, err = run(capsys, "check", *args, "--format", "json")
    rep = expanded(json.loads(report))
    allowlisted = {a for f in rep["suppressed"] for a in f["actions"]}
    for p in rep["principals"]:
        if unused_before.get(p["id"]):
            assert set(p["actions"].get("unused", [])) <= allowlisted, (p["id"], p["actions"].get("unused"))
            kept_used = set(p["actions"].get("used", []))
            assert kept_used, "used actions are kept"
        assert set(p["actions"]["granted"]) <= granted_before[p["id"]], "a fix never widens a grant"
    assert not [f for f in rep["findings"] if f["check"] == "unused-actions"]
    assert rep["errors"] == []

    code, diff, err = run(capsys, "fix", *args)
    assert diff == "" and "nothing to fix" in err, "a second run changes nothing"


def test_fix_keeps_used_unobservable_and_allowlisted_and_drops_the_rest(tmp_path, monkeypatch, capsys):
    root = tmp_path / "t"
    shutil.copytree(FIX / "cfn_yaml", root)
    monkeypatch.chdir(root)
    code, diff, err = run(capsys, "fix", "infra", "--baselines", "baselines", "--config", "iamgate.yml")
    assert code == 0
    assert "-                  - dynamodb:DeleteTable\n" in diff  # unused literal: its line goes
    assert "\n                   - dynamodb:GetItem    # reads\n" in diff  # a kept line is context, untouched
    assert "+                Action: [kms:Decrypt, kms:Encrypt]\n" in diff  # Encrypt is allowlisted
    assert "+                  - sqs:SendMessage\n" in diff and "sqs:PurgeQueue" not in diff
    assert "-                NotAction: [iam:*, organizations:*" in diff and "+                Action:\n" in diff
    assert "+                  - sns:Publish\n" in diff  # NotAction became the explicit kept list
    assert "+                - !Ref AWS::NoValue\n" in diff  # a dropped !If branch becomes no value
    assert "-                  - ec2:RunInstances\n" in diff
    assert "keeps 1 allowlisted: kms:Encrypt" in err
    assert "unobservable (data event" in err  # kept because it cannot be judged, and said so
    assert "managed policy" not in err


def test_compact_uses_only_wildcards_the_catalog_proves(tmp_path, monkeypatch, capsys):
    root = tmp_path / "t"
    shutil.copytree(FIX / "cfn_yaml", root)
    monkeypatch.chdir(root)
    code, diff, err = run(capsys, "fix", "infra", "--baselines", "baselines", "--config", "iamgate.yml",
                          "--compact", "--write")
    # each wildcard stays inside what the NotAction it replaces grants, whatever AWS adds: no warning
    assert code == 0 and "widens as AWS adds actions" not in err
    text = (root / "infra" / "app.yaml").read_text()
    assert "rds-data:*" in text  # every rds-data action is a data event, kept as unobservable
    code, report, _ = run(capsys, "check", "infra", "--baselines", "baselines", "--config", "iamgate.yml",
                          "--format", "json")
    rep = expanded(json.loads(report))
    assert not [f for f in rep["findings"] if f["check"] == "unused-actions"]


def test_fix_without_baselines_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.json").write_text('{"Version": "2012-10-17", "Statement": []}')
    code, out, err = run(capsys, "fix", "x.json")
    assert code == 2 and "needs --baselines" in err and "Traceback" not in err
