"""The PR author controls every file: their text cannot escape its medium (Markdown, terminal,
annotations, SARIF), and a symbolic link cannot lead the gate out of the scanned paths."""
from __future__ import annotations

import json
import re
import shutil

import pytest

from iamgate.formats.comment import comment_body
from iamgate.config import Config
from iamgate.formats import FORMATS
from iamgate.pipeline import analyse

from conftest import FIXTURES, cli_in_process, write_json
from iamgate.formats.json import expanded

ESC = "\x1b"
HOSTILE_ID = "Role\n\n# Owned\n\n![t](https://evil.example/t.png) [click](https://evil.example)\n\n"


def template(logical_id: str = "AppRole", role_name: str = "app") -> str:
    return json.dumps({"Resources": {logical_id: {"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": role_name,
        "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
            {"Effect": "Allow", "Action": "s3:PutBucketAcl", "Resource": "*"}]}}]}}}}, indent=2)


def render_all(report) -> dict[str, str]:
    return {name: FORMATS.get(name)(color=False).render(report) for name in FORMATS.names()}


def outside_code(text: str) -> str:
    return re.sub(r"`[^`\n]*`", "", text)


def markdown_lines_outside_html(text: str) -> list[str]:
    """Lines CommonMark reads as Markdown again: after a blank line inside `<details>`."""
    return [line for line in text.splitlines() if line.startswith(("#", "!["))]


def test_a_logical_id_with_blank_lines_cannot_close_the_details_block(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.json").write_text(template(HOSTILE_ID))
    report = analyse(["t.json"], [], Config())
    assert any(HOSTILE_ID in r.principal.id for r in report.results)
    for text in (FORMATS.get("markdown")().render(report), comment_body(report, "<!-- m -->", "iamgate")):
        assert markdown_lines_outside_html(text) == ["### iamgate least-privilege report"] or \
            markdown_lines_outside_html(text) == ["### iamgate"]
        summary = next(line for line in text.splitlines() if line.startswith("<details><summary>"))
        assert "Owned" in summary and "</summary>" in summary  # the id stays on the summary's one line
        assert "](https:evil" not in outside_code(text) and "](https://evil" not in outside_code(text)


def test_a_file_name_with_blank_lines_cannot_add_markdown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "p\n\n# Owned\n\n![t](https:evil.example%2Ft.png).json"
    (tmp_path / name).write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:CreateAccessKey", "Resource": "*"}]}))
    report = analyse(["."], [], Config())
    assert [r.principal.id for r in report.results] == [name]
    text = FORMATS.get("markdown")().render(report)
    assert markdown_lines_outside_html(text) == ["### iamgate least-privilege report"]
    assert "](https:evil" not in outside_code(text) and "](https://evil" not in outside_code(text)


def test_terminal_escape_sequences_in_a_role_name_are_made_visible(tmp_path):
    evil = f"app{ESC}]0;pwned\a{ESC}[2J{ESC}[31m\x9b1m\r"
    (tmp_path / "t.json").write_text(template(role_name=evil))
    r = cli_in_process("check", "t.json", "--color", "never", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert ESC not in r.stdout and "\a" not in r.stdout and "\x9b" not in r.stdout and "\r" not in r.stdout
    assert "app\\x1b]0;pwned\\x07\\x1b[2J" in r.stdout


def test_terminal_escapes_in_config_errors_are_made_visible(tmp_path):
    (tmp_path / ".iamgate.yml").write_text('severity:\n  "x\\e[2J\\n::set-output name=result::pass": high\n')
    (tmp_path / "t.json").write_text(template())
    r = cli_in_process("check", "t.json", cwd=tmp_path)
    assert r.returncode == 2
    assert ESC not in r.stderr and "\n::" not in r.stderr


def test_annotations_and_sarif_are_plain_text_without_markdown_backslashes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.json").write_text(template("App_Role", role_name=f"my_app-[prod](x)*{ESC}[1m"))
    report = analyse(["t.json"], [], Config(severity={"no-usage-data": "high"}))
    out = render_all(report)
    for name in ("github", "sarif"):
        assert "\\_" not in out[name] and "\\[" not in out[name] and "\\(" not in out[name], name
        assert ESC not in out[name] and "\\u001b" not in out[name], name
    assert "App_Role" in out["github"]
    sarif = json.loads(out["sarif"])
    assert any("App_Role" in r["message"]["text"] for r in sarif["runs"][0]["results"])


# -- symbolic links -------------------------------------------------------------------------------

SECRET = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["support:DescribeCases", "support:CreateCase"],
     "Resource": "arn:aws:s3:::TOPSECRET"}]}


@pytest.fixture
def leaky(tmp_path):
    """A workspace whose `infra/leak.json` and `infra/linked/` point outside it."""
    outside = tmp_path / "outside"
    write_json(outside / "secret.json", SECRET)
    write_json(outside / "dir" / "other.json", SECRET)
    ws = tmp_path / "ws"
    (ws / "infra").mkdir(parents=True)
    shutil.copy(FIXTURES / "fix" / "policy_json" / "infra" / "support.json", ws / "infra" / "support.json")
    (ws / "infra" / "leak.json").symlink_to(outside / "secret.json")
    (ws / "infra" / "linked").symlink_to(outside / "dir", target_is_directory=True)
    shutil.copytree(FIXTURES / "fix" / "policy_json" / "baselines", ws / "baselines")
    (ws / "iamgate.yml").write_text(f"principals:\n  infra/support.json: support-readonly\n"
                                    f"  {outside / 'secret.json'}: support-readonly\n"
                                    f"  infra/leak.json: support-readonly\n")
    return ws, outside


def test_a_symlink_out_of_the_scanned_paths_is_not_read_and_is_listed(leaky):
    ws, outside = leaky
    for fmt in FORMATS.names():
        r = cli_in_process("check", "infra", "--baselines", "baselines", "--config", "iamgate.yml", "--format", fmt,
                    "--fail-on", "never", cwd=ws)
        assert r.returncode == 0, (fmt, r.stderr)
        assert "TOPSECRET" not in r.stdout and str(outside) not in r.stdout and "secret.json" not in r.stdout, fmt
        assert "infra/leak.json" in r.stdout and "infra/linked" in r.stdout, fmt
    r = cli_in_process("check", "infra", "--baselines", "baselines", "--config", "iamgate.yml", "--format", "json",
                cwd=ws)
    skipped = {s["file"]: s["reason"] for s in json.loads(r.stdout)["skipped"]}
    assert "leaves the scanned paths" in skipped["infra/leak.json"]
    assert "leaves the scanned paths" in skipped["infra/linked"]


def test_confine_to_keeps_even_a_named_path_inside_the_workspace(leaky):
    ws, outside = leaky
    r = cli_in_process("check", "infra/leak.json", "infra/support.json", "--confine-to", ".", "--format", "json", cwd=ws)
    assert "TOPSECRET" not in r.stdout and str(outside) not in r.stdout
    rep = expanded(json.loads(r.stdout))
    assert [p["id"] for p in rep["principals"]] == ["infra/support.json"]
    assert rep["skipped"] == [{"file": "infra/leak.json", "reason": "its real path leaves the workspace; not read"}]


def test_fix_write_never_writes_outside_the_scanned_paths(leaky):
    ws, outside = leaky
    before = (outside / "secret.json").read_bytes()
    r = cli_in_process("fix", "infra", "--baselines", "baselines", "--config", "iamgate.yml", "--write", cwd=ws)
    assert r.returncode == 0, r.stderr
    assert (outside / "secret.json").read_bytes() == before
    assert (ws / "infra" / "leak.json").is_symlink()
    assert "support:CreateCase" not in (ws / "infra" / "support.json").read_text()  # the real file is fixed


def test_fix_files_refuses_a_symlink_and_a_path_outside_the_roots(tmp_path, monkeypatch, catalog):
    from iamgate.fix.files import fix_files
    from iamgate.fix.plan import plan
    ws = tmp_path / "ws"
    shutil.copytree(FIXTURES / "fix" / "policy_json", ws)
    monkeypatch.chdir(ws)
    cfg = Config(principals={"infra/support.json": "support-readonly"})
    report = analyse(["infra"], ["baselines"], cfg, catalog=catalog)
    remediation = plan(report.results, catalog, cfg)
    real = ws / "infra" / "support.json"
    elsewhere = tmp_path / "elsewhere.json"
    shutil.move(real, elsewhere)
    real.symlink_to(elsewhere)  # swapped for a link after the scan
    files, problems = fix_files(remediation, roots=report.roots)
    assert files == [] and any("symbolic link" in str(p) for p in problems)
    real.unlink()
    shutil.copy(elsewhere, real)
    files, problems = fix_files(remediation, roots=[str(tmp_path / "other")])
    assert files == [] and any("outside" in str(p) for p in problems)
    files, problems = fix_files(remediation, roots=report.roots)
    assert [f.file for f in files] == ["infra/support.json"]


def test_each_medium_has_its_own_escaping():
    from iamgate.action.log import neutralise
    from iamgate.escape import code, html_text, md, plain, terminal, workflow_data
    assert terminal("a\x1b[31mb\x9b\x07\r\nc\u202e") == "a\\x1b[31mb\\x9b\\x07\\x0d\\x0ac\\u202e"
    assert html_text("a\n\n# b\r\n![i](u)") == "a # b &#33;&#91;i&#93;(u)"
    assert "\n" not in md("a\n\nb") and "\x1b" not in md("a\x1bb") and "\x1b" not in code("a\x1bb")
    assert plain("a_b [c](d)\nnext\x1b") == "a_b [c](d)\nnext\\x1b"  # no Markdown backslashes
    assert neutralise(workflow_data("x\n::set-output name=a::b")) == "x%0A::set-output name=a::b"
    assert not neutralise(workflow_data("::stop-commands::t")).startswith("::")
