"""`iamgate data update` against a local stand-in for AWS's service reference; `check --data-dir`."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from iamgate.reference import support
from iamgate.cli import main
from iamgate.commands.data import FetchError, Fetcher

from fixtures.servicereference.fake_endpoint import FakeServiceReference
from iamgate.formats.json import expanded

TODAY = dt.datetime.now(dt.timezone.utc).date().isoformat()


@pytest.fixture
def endpoint():
    with FakeServiceReference() as fake:
        yield fake


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("IAMGATE_SERVICE_REFERENCE_URL", raising=False)
    support._load_default.cache_clear()
    yield
    support._load_default.cache_clear()


def update(capsys, *args) -> tuple[int, str, str]:
    code = main(["data", "update", *args])
    out, err = capsys.readouterr()
    return code, out, err


def previous(tmp_path):
    """A table already in place, as a scheduled job left it."""
    out = tmp_path / "data"
    table = support.table_from_services({"old": {"Name": "old", "Actions": [{"Name": "Run"}]}}, "2026-01-01", "old")
    support.write_table(out / support.FILE_NAME, table)
    return out, (out / support.FILE_NAME).read_bytes()


def test_update_writes_the_table_with_progress(tmp_path, capsys, endpoint):
    out = tmp_path / "data"
    code, _, err = update(capsys, "--out", str(out), "--endpoint", endpoint.url)
    assert code == 0, err
    assert "service reference: 3 of 3 service files" in err
    assert f"AWS support data of {TODAY}" in err
    data = support.load(out)
    assert data.date == TODAY and data.source == f"{endpoint.url} as served on {TODAY}"
    assert data.listed == {"sqs:sendmessage", "sqs:addpermission", "sqs:listmessagemovetasks",
                           "cloudwatch:putmetricalarm", "cloudwatch:deletealarms", "newsvc:dothing"}
    assert data.generation == {"sqs:sendmessage", "sqs:addpermission", "newsvc:dothing"}
    assert data.last_accessed == {"sqs:addpermission", "cloudwatch:putmetricalarm", "cloudwatch:deletealarms",
                                  "newsvc:dothing"}
    assert [p.name for p in out.iterdir()] == [support.FILE_NAME]  # no temporary file left behind


def test_update_retries_server_errors_and_cut_bodies(tmp_path, capsys, endpoint):
    endpoint.failures = {"/": [503], "/v1/sqs/sqs.json": [500, "truncate"]}
    code, _, err = update(capsys, "--out", str(tmp_path / "d"), "--endpoint", endpoint.url)
    assert code == 0, err
    assert endpoint.requests.count("/") == 2 and endpoint.requests.count("/v1/sqs/sqs.json") == 3
    assert "sqs:sendmessage" in support.load(tmp_path / "d").listed


def test_a_failed_download_leaves_the_previous_data(tmp_path, capsys, endpoint):
    out, before = previous(tmp_path)
    endpoint.failures = {"/": [500, 500]}
    code, _, err = update(capsys, "--out", str(out), "--endpoint", endpoint.url, "--attempts", "2")
    assert code == 2
    assert "data update failed" in err and "HTTP 500" in err and "after 2 attempts" in err
    assert "the previous data is unchanged" in err and "Traceback" not in err
    assert (out / support.FILE_NAME).read_bytes() == before


def test_a_partial_download_leaves_the_previous_data(tmp_path, capsys, endpoint):
    out, before = previous(tmp_path)
    del endpoint.services["cloudwatch"]  # listed in the index, but its file is gone
    endpoint.index_override = [{"service": n, "url": f"{endpoint.url}v1/{n}/{n}.json"}
                               for n in ("cloudwatch", "newsvc", "sqs")]
    code, _, err = update(capsys, "--out", str(out), "--endpoint", endpoint.url)
    assert code == 2
    assert "/v1/cloudwatch/cloudwatch.json: HTTP 404" in err
    assert (out / support.FILE_NAME).read_bytes() == before
    assert [p.name for p in out.iterdir()] == [support.FILE_NAME]
    # a file that is not a service reference file is as bad as a missing one
    endpoint.services["cloudwatch"] = {"Name": "cloudwatch"}
    code, _, err = update(capsys, "--out", str(out), "--endpoint", endpoint.url)
    assert code == 2 and "no Actions list" in err
    assert (out / support.FILE_NAME).read_bytes() == before


def test_endpoint_from_the_environment_into_the_user_cache(tmp_path, capsys, endpoint, monkeypatch):
    monkeypatch.setenv("IAMGATE_SERVICE_REFERENCE_URL", endpoint.url)
    code, _, err = update(capsys)
    assert code == 0, err
    assert (tmp_path / "xdg" / "iamgate" / "data" / support.FILE_NAME).is_file()
    support._load_default.cache_clear()
    assert support.load().date == TODAY  # newer than the shipped table: check uses it
    assert main(["data", "show"]) == 0
    assert f"AWS support data of {TODAY} ({tmp_path / 'xdg'}" in capsys.readouterr().out


def test_the_index_may_not_send_the_download_elsewhere(endpoint):
    endpoint.index_override = [{"service": "sqs", "url": "http://192.0.2.1/v1/sqs/sqs.json"}]
    with pytest.raises(FetchError, match="points outside"):
        Fetcher(endpoint.url).index()
    with pytest.raises(FetchError, match="not an http"):
        Fetcher("file:///etc/")


ROLE_TEMPLATE = """\
Resources:
  AppRole:
    Type: AWS::IAM::Role
    Properties:
      RoleName: app
      AssumeRolePolicyDocument: {Version: "2012-10-17", Statement: []}
      Policies:
        - PolicyName: p
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action: [sqs:SendMessage, sqs:ListMessageMoveTasks, kms:Decrypt]
                Resource: "*"
"""


def test_check_judges_with_the_given_data(tmp_path, capsys, endpoint):
    out = tmp_path / "data"
    assert update(capsys, "--out", str(out), "--endpoint", endpoint.url)[0] == 0
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "t.yaml").write_text(ROLE_TEMPLATE)
    (tmp_path / "b.json").write_text(json.dumps({
        "schema": "iamgate.baseline/v1", "principal_arn": "arn:aws:iam::111122223333:role/app",
        "window": {"start": "2026-08-24T00:00:00Z", "end": "2026-11-22T00:00:00Z"},
        "sources": [{"kind": "access-analyzer", "complete": True}], "used": {}}))
    args = ["check", str(tmp_path / "infra"), "--baselines", str(tmp_path / "b.json"), "--fail-on", "never"]
    assert main(args + ["--data-dir", str(out), "--format", "json"]) == 0
    report = expanded(json.loads(capsys.readouterr().out))
    assert report["support_data"]["date"] == TODAY and report["support_data"]["origin"].endswith(support.FILE_NAME)
    (p,) = report["principals"]
    assert p["actions"]["unused"] == ["sqs:sendmessage"]
    assert p["reasons"]["unobservable"] == {
        "Access Analyzer does not report this action": ["sqs:listmessagemovetasks"],
        f"no AWS support data for this action (data of {TODAY}); run `iamgate data update`": ["kms:decrypt"]}
    assert p["judged"]["summary"] == ("judged 1 of 3 granted actions (33%); 2 unobservable: "
                                      "1 not reported by Access Analyzer, 1 without AWS support data")
    for fmt in ("text", "markdown"):
        assert main(args + ["--data-dir", str(out), "--format", fmt]) == 0
        text = capsys.readouterr().out.replace("\\", "")  # Markdown escapes the parentheses
        assert f"AWS support data of {TODAY}" in text and "judged 1 of 3 granted actions (33%)" in text
    assert main(args + ["--data-dir", str(out), "--format", "sarif"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"][0]["properties"]["support_data"]["date"] == TODAY
    # without it: the shipped table (the user cache here is empty)
    assert main(args + ["--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["support_data"]["origin"] == "shipped"
    # the GitHub Action's step sets $IAMGATE_DATA_DIR instead of --data-dir
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IAMGATE_DATA_DIR", str(out))
        assert main(args + ["--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["support_data"]["date"] == TODAY
        mp.setenv("IAMGATE_DATA_DIR", str(tmp_path / "nothing"))
        assert main(args) == 2
        assert "$IAMGATE_DATA_DIR" in capsys.readouterr().err
    # a folder without a table is a usage error, not a silent fallback
    assert main(args + ["--data-dir", str(tmp_path / "infra")]) == 2
    assert "iamgate data update --out" in capsys.readouterr().err


def test_the_rebuild_script_reads_the_live_endpoint(tmp_path, endpoint, monkeypatch, capsys):
    import importlib.util

    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("build_action_support", ROOT / "scripts/build_action_support.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setenv("IAMGATE_SERVICE_REFERENCE_URL", endpoint.url)
    out = tmp_path / "table.json.gz"
    assert script.main(["--live", "--date", "2026-12-01", "--out", str(out)]) == 0
    data = support.parse(out.read_bytes(), str(out))
    assert data.date == "2026-12-01" and len(data.listed) == 6 and endpoint.url in data.source


def test_an_unreadable_data_dir_is_a_usage_error_for_every_command(tmp_path, capsys, monkeypatch):
    from conftest import ROOT
    monkeypatch.setenv("IAMGATE_DATA_DIR", str(tmp_path / "none"))
    code = main(["fix", str(ROOT / "examples" / "infra"), "--baselines", str(ROOT / "examples" / "baselines")])
    err = capsys.readouterr().err
    assert code == 2 and "iamgate data update --out" in err and "internal error" not in err
