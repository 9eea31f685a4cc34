"""Small things a new user notices: colour that keeps columns aligned and stays off where it must,
placeholders said to be placeholders, lists printed once, plurals."""
from __future__ import annotations

import json
import re

import pytest
from conftest import FIXTURES, in_a_terminal, role_template, run_cli

from iamgate.config import Config
from iamgate.formats import FORMATS
from iamgate.pipeline import analyse

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TEMPLATE = role_template('{Effect: Allow, Action: ["s3:GetObject", "foo:Bar", "s3:GetObjectt"], Resource: "*"}', '{Effect: Allow, Action: "iam:PassRole", Resource: "*"}')


@pytest.fixture
def report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.yaml").write_text(TEMPLATE)
    return analyse(["t.yaml"], [], Config())


def test_colour_keeps_the_columns_aligned(report):
    plain = FORMATS.get("text")(color=False).render(report)
    coloured = FORMATS.get("text")(color=True).render(report)
    assert "\x1b[" in coloured
    assert ANSI.sub("", coloured) == plain


def test_term_dumb_and_no_color_mean_no_colour_on_a_terminal(tmp_path):
    (tmp_path / "t.yaml").write_text(TEMPLATE)
    base = {k: "" for k in ("NO_COLOR",)}
    assert "\x1b[" in in_a_terminal(["check", "t.yaml"], {**base, "TERM": "xterm-256color"}, tmp_path)[1]
    assert "\x1b[" not in in_a_terminal(["check", "t.yaml"], {**base, "TERM": "dumb"}, tmp_path)[1]
    assert "\x1b[" not in in_a_terminal(["check", "t.yaml"], {"NO_COLOR": "1", "TERM": "xterm"}, tmp_path)[1]


def test_print_policy_without_an_access_role_says_the_arn_is_a_placeholder(tmp_path):
    r = run_cli("baseline", "--print-policy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Statement"]  # stdout stays the policy alone
    assert "placeholder" in r.stderr and "--access-role" in r.stderr
    r = run_cli("baseline", "--print-policy", "--access-role", "arn:aws:iam::123456789012:role/aa", cwd=tmp_path)
    assert "placeholder" not in r.stderr


def test_unknown_actions_are_listed_once_in_every_format(report):
    for name in ("text", "markdown", "github", "sarif"):
        out = FORMATS.get(name)(color=False).render(report)
        if name == "sarif":  # the messages (results also carry the actions as data)
            out = "\n".join(r["message"]["text"] for r in json.loads(out)["runs"][0]["results"])
        assert out.count("foo:bar") == 1, (name, out)
        assert out.count("s3:getobjectt") == 1, name


def test_counts_of_one_are_singular(report):
    text = FORMATS.get("text")(color=False).render(report)
    assert "(1 principal, " in text and "principals" not in text
    r = run_cli("check", str(FIXTURES / "github" / "infra"), "--format", "markdown", "--baselines",
                str(FIXTURES / "github" / "baselines"), "--fail-on", "never")
    assert "(s)" not in r.stdout
