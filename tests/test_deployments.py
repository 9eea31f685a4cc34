"""One template, many deployments (issue 21): matching finds every deployment, named deployments resolve
per account, CDK stages are one principal, and check/fix judge the union of what the deployments used."""
from __future__ import annotations

import json
from iamgate.formats.json import expanded
import shutil
from pathlib import Path

import pytest

from iamgate import config as config_mod
from iamgate.cli import main
from iamgate.model import Baseline, Principal
from iamgate.sources import ScanOptions, Workspace, scan
from iamgate.usage import baseline_format as fmt
from iamgate.usage.deployments import gather
from iamgate.usage.matching import Matcher

FIXTURES = Path(__file__).parent / "fixtures" / "deployments"
STAGING, PROD = "111111111111", "222222222222"
WINDOW = {"start": "2026-08-01T00:00:00Z", "end": "2026-11-29T00:00:00Z"}
# role name in each account -> the actions it used there
USED = {
    (STAGING, "api"): ["dynamodb:GetItem"], (PROD, "api"): ["dynamodb:PutItem"],
    (STAGING, "worker-staging"): ["sqs:CreateQueue"], (PROD, "worker-prod"): ["sqs:SendMessage"],
    (STAGING, "etl-staging"): ["kms:Decrypt"], (PROD, "etl-prod"): ["kms:Encrypt"],
}
NEITHER = {"ApiRole": "dynamodb:deletetable", "WorkerRole": "sqs:deletequeue",
           "aws_iam_role.etl": "kms:schedulekeydeletion"}


def baseline_doc(account: str, name: str, used, deployment: str | None = None) -> dict:
    doc = {"schema": "iamgate.baseline/v1", "principal_arn": f"arn:aws:iam::{account}:role/{name}",
           "window": WINDOW, "sources": [{"kind": "cloudtrail", "events": 100, "files": 3}],
           "used": {a.lower(): {"count": 3, "last_seen": "2026-11-20T00:00:00Z", "signals": ["cloudtrail"]}
                    for a in used}}
    if deployment:
        doc["deployment"] = deployment
    return doc


def write_baselines(folder: Path, entries: dict, deployments: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for (account, name), used in entries.items():
        doc = baseline_doc(account, name, used, (deployments or {}).get(account))
        (folder / f"{account}-{name}.json").write_text(json.dumps(doc))
    return folder


@pytest.fixture
def repo(tmp_path, monkeypatch):
    shutil.copytree(FIXTURES / "multi", tmp_path / "repo")
    monkeypatch.chdir(tmp_path / "repo")
    return tmp_path / "repo"


def check_json(args, capsys) -> tuple[int, dict]:
    code = main(["check", *args, "--format", "json"])
    return code, expanded(json.loads(capsys.readouterr().out))


# -- matching -----------------------------------------------------------------------------------------

def _principals(path) -> tuple:
    return scan(Workspace([str(path)])).principals


def test_each_principal_matches_its_staging_and_prod_baselines(repo):
    baselines = [fmt.parse(baseline_doc(a, n, u)) for (a, n), u in USED.items()]
    got = gather(_principals(repo), Matcher(baselines), config_mod.Config())
    deployments = {pid: {d.name: d for d in deps} for pid, deps in got.deployments.items()}
    for pid, staging, prod, how in (("ApiRole", "api", "api", "name"),
                                    ("WorkerRole", "worker-staging", "worker-prod", "name pattern worker-*"),
                                    ("aws_iam_role.etl", "etl-staging", "etl-prod", "name pattern etl-*")):
        mine = deployments[pid]
        assert set(mine) == {STAGING, PROD}, pid
        assert mine[STAGING].baseline.principal_arn == f"arn:aws:iam::{STAGING}:role/{staging}"
        assert mine[PROD].baseline.principal_arn == f"arn:aws:iam::{PROD}:role/{prod}"
        assert mine[PROD].matched_by == how and mine[PROD].account == PROD
    assert got.matching.unmatched == ()


def test_a_principal_never_matches_a_baseline_of_another_kind():
    m = Matcher([Baseline(f"arn:aws:iam::{STAGING}:user/api"), Baseline(f"arn:aws:iam::{PROD}:role/api")])
    got = m.match([Principal("U", "user", name="api"), Principal("R", "role", name="api")])
    assert [d.baseline.principal_arn for d in got.deployments["U"]] == [f"arn:aws:iam::{STAGING}:user/api"]
    assert [d.baseline.principal_arn for d in got.deployments["R"]] == [f"arn:aws:iam::{PROD}:role/api"]


def test_a_baseline_that_fits_two_principals_is_reported():
    bl = [Baseline(f"arn:aws:iam::{STAGING}:role/worker-admin"), Baseline(f"arn:aws:iam::{STAGING}:role/job-a")]
    m = Matcher(bl)
    # equally sure (two patterns): each is judged with it, and the report names it
    got = m.match([Principal("A", "role", name_pattern="worker-*"), Principal("B", "role", name_pattern="*-admin")])
    assert [s.arn for s in got.shared] == [f"arn:aws:iam::{STAGING}:role/worker-admin"]
    assert set(got.shared[0].principals) == {"A", "B"} and "fits A" in got.shared[0].text()
    # a fixed name is surer than a pattern: the baseline judges only that principal, and is still reported
    got = m.match([Principal("A", "role", name_pattern="worker-*"), Principal("N", "role", name="worker-admin")])
    assert got.shared[0].principals == ("N",) and got.shared[0].others == ("A",)
    assert got.deployments["A"] == () and len(got.deployments["N"]) == 1
    assert "judges only N" in got.shared[0].text()


def test_a_pattern_fitting_two_baselines_in_one_account_takes_neither():
    bl = [Baseline(f"arn:aws:iam::{STAGING}:role/worker-a"), Baseline(f"arn:aws:iam::{STAGING}:role/worker-b"),
          Baseline(f"arn:aws:iam::{PROD}:role/worker-a")]
    got = Matcher(bl).match([Principal("W", "role", name_pattern="worker-*")])
    assert [d.account for d in got.deployments["W"]] == [PROD]
    assert got.ambiguous[0].account == STAGING and len(got.ambiguous[0].arns) == 2
    assert got.unmatched == ()  # ambiguous ones are reported as such, not as unmatched


def test_baselines_written_for_named_deployments_tell_one_account_apart():
    bl = [fmt.parse(baseline_doc(STAGING, "worker-dev", [], "dev")),
          fmt.parse(baseline_doc(STAGING, "worker-staging", [], "staging"))]
    got = Matcher(bl).match([Principal("W", "role", name_pattern="worker-*")])
    assert sorted(d.name for d in got.deployments["W"]) == ["dev", "staging"]


# -- named deployments ----------------------------------------------------------------------------------

NAMED = """
deployments:
  staging: {account: "111111111111", parameters: {Env: staging}, var-files: [envs/staging.tfvars]}
  prod: {account: "222222222222", parameters: {Env: prod}, var-files: [envs/prod.tfvars]}
"""


def _rescan(path):
    def rescan(d):
        opts = ScanOptions(parameters=d.parameters, var_files=d.var_files, terraform_workspace=d.name)
        got = scan(Workspace([str(path)], opts))
        return got.principals, got.errors
    return rescan


def test_named_deployments_resolve_parameters_var_files_and_workspace_per_account(repo):
    cfg = config_mod.parse(__import__("yaml").safe_load(NAMED))
    entries = {**USED, (STAGING, "svc-staging"): [], (PROD, "svc-prod"): [],
               (STAGING, "worker-prod"): []}  # a prod name in the staging account is not staging's
    baselines = [fmt.parse(baseline_doc(a, n, u)) for (a, n), u in entries.items()]
    got = gather(_principals(repo), Matcher(baselines), cfg, _rescan(repo))
    for pid, name in (("WorkerRole", "worker"), ("aws_iam_role.etl", "etl"), ("aws_iam_role.svc", "svc")):
        deps = {d.name: d for d in got.deployments[pid]}
        assert list(deps) == ["staging", "prod"], pid
        assert deps["staging"].baseline.principal_arn == f"arn:aws:iam::{STAGING}:role/{name}-staging"
        assert deps["prod"].baseline.principal_arn == f"arn:aws:iam::{PROD}:role/{name}-prod"
        assert deps["prod"].matched_by == "name"  # resolved: a fixed name in that account
    assert got.matching.unmatched == (f"arn:aws:iam::{STAGING}:role/worker-prod",)
    assert got.errors == ()


def test_a_var_file_outside_the_repository_is_refused():
    with pytest.raises(config_mod.ConfigError, match="var-files.0: '../x.tfvars' leaves the repository"):
        config_mod.parse({"deployments": {"prod": {"account": PROD, "var-files": ["../x.tfvars"]}}})
    with pytest.raises(config_mod.ConfigError, match="deployments.prod.account"):
        config_mod.parse({"deployments": {"prod": {"account": "22"}}})


def test_a_missing_var_file_is_an_error_of_that_deployment(repo):
    (repo / ".iamgate.yml").write_text(NAMED.replace("envs/prod.tfvars", "envs/none.tfvars"))
    write_baselines(repo / "baselines", USED)
    code = main(["check", ".", "--baselines", "baselines", "--format", "json", "-o", "out.json"])
    report = expanded(json.loads((repo / "out.json").read_text()))
    assert code == 2
    assert any(e["file"] == "envs/none.tfvars" and e["message"].startswith("deployment prod: var-file")
               for e in report["errors"])


# -- CDK stages ----------------------------------------------------------------------------------------

def test_a_cdk_app_with_two_stages_is_one_principal_with_two_deployments():
    principals = _principals(FIXTURES / "cdk-stages")
    assert len(principals) == 1
    p = principals[0]
    assert p.display_name == "app-worker" and "AppStack/Worker/ServiceRole" in p.aliases
    assert [(name, account) for name, account, _ in p.stages] == [("Prod", PROD), ("Staging", STAGING)]
    bl = [Baseline(f"arn:aws:iam::{STAGING}:role/app-worker"), Baseline(f"arn:aws:iam::{PROD}:role/app-worker")]
    got = gather(principals, Matcher(bl), config_mod.Config())
    deps = got.deployments[p.id]
    assert [(d.name, d.account, d.baseline.account) for d in deps] == [("Prod", PROD, PROD), ("Staging", STAGING, STAGING)]
    # prod grants one more action: the principal judged grants the union, staging is judged with its own grant
    assert deps[0].principal is None and deps[1].principal is not None
    assert [what for _, what in got.differs[p.id]] == [
        ("tests/fixtures/deployments/cdk-stages/cdk.out/assembly-Prod/ProdAppStack1A2B3C4D.template.json:17: "
         "sqs:ReceiveMessage, sqs:SendMessage, sqs:DeleteQueue",),
        ("tests/fixtures/deployments/cdk-stages/cdk.out/assembly-Staging/StagingAppStack1A2B3C4D.template.json:17: "
         "sqs:ReceiveMessage, sqs:SendMessage",)]


# -- the scheduled job ------------------------------------------------------------------------------------

def test_a_baseline_says_which_deployment_it_came_from(tmp_path):
    b = fmt.parse(baseline_doc(PROD, "api", ["dynamodb:GetItem"], "prod"))
    assert (b.deployment, b.account) == ("prod", PROD)
    fmt.write(b, tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text())["deployment"] == "prod"
    assert "deployment" not in fmt.to_v1(fmt.parse(baseline_doc(PROD, "api", [])))


def test_usage_cloudtrail_records_the_deployment(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    event = {"eventVersion": "1.08", "eventSource": "sqs.amazonaws.com", "eventName": "SendMessage",
             "eventTime": "2026-11-20T00:00:00Z", "awsRegion": "us-east-1", "eventType": "AwsApiCall",
             "userIdentity": {"type": "AssumedRole", "arn": f"arn:aws:sts::{PROD}:assumed-role/api/s",
                              "sessionContext": {"sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{PROD}:role/api"}}}}
    (logs / "a.json").write_text(json.dumps({"Records": [event]}))
    assert main(["usage", "cloudtrail", str(logs), "--out", str(tmp_path / "out"), "--deployment", "prod"]) == 0
    written = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json") if not p.name.startswith(".")]
    assert [(d["principal_arn"], d["deployment"]) for d in written] == [(f"arn:aws:iam::{PROD}:role/api", "prod")]
    assert main(["usage", "cloudtrail", str(logs), "--out", str(tmp_path / "o2"), "--deployment=a b"]) == 2


# -- end to end: `iamgate check` and `fix` --------------------------------------------------------------

def _actions(report: dict, pid: str, verdict: str) -> set:
    p = next(p for p in report["principals"] if p["id"] == pid)
    return set(p["actions"][verdict])


def test_check_judges_every_principal_in_both_accounts(repo, capsys):
    write_baselines(repo / "baselines", USED)
    code, report = check_json([".", "--baselines", "baselines", "--fail-on", "never"], capsys)
    assert code == 0
    assert report["unmatched_baselines"] == []
    for pid, unused in NEITHER.items():
        p = next(p for p in report["principals"] if p["id"] == pid)
        assert f"{STAGING}" in p["judged_in"] and f"{PROD}" in p["judged_in"], pid
        assert [d["account"] for d in p["deployments"]] == [STAGING, PROD]
        assert _actions(report, pid, "unused") == {unused}, pid
        assert len(_actions(report, pid, "used")) == 2, pid
    api = next(p for p in report["principals"] if p["id"] == "ApiRole")
    assert {tuple(u["deployments"]): u["actions"] for u in api["used_in"]} == {
        (STAGING,): ["dynamodb:getitem"], (PROD,): ["dynamodb:putitem"]}
    main(["check", ".", "--baselines", "baselines", "--fail-on", "never"])
    text = capsys.readouterr().out
    assert f"judged in {STAGING} and {PROD}" in text and "matched no principal" not in text
    for fmt_name in ("markdown", "sarif", "github"):
        main(["check", ".", "--baselines", "baselines", "--format", fmt_name])
        assert f"judged in {STAGING} and {PROD}" in capsys.readouterr().out, fmt_name


def test_fix_drops_only_what_no_deployment_used(repo, capsys):
    write_baselines(repo / "baselines", USED)
    assert main(["fix", ".", "--baselines", "baselines", "--write"]) == 0
    err = capsys.readouterr().err
    assert f"ApiRole: keeps what any deployment used (judged in {STAGING} and {PROD})" in err
    assert f"{STAGING} alone needs DynamoDB:GetItem".lower() in err.lower()
    api = (repo / "cfn/api.yaml").read_text()
    assert "dynamodb:GetItem, dynamodb:PutItem]" in api and "DeleteTable" not in api
    worker = (repo / "cfn/worker.yaml").read_text()
    assert "sqs:CreateQueue, sqs:SendMessage]" in worker and "DeleteQueue" not in worker
    tf = (repo / "tf/main.tf").read_text()
    assert '"kms:Decrypt", "kms:Encrypt"]' in tf and "ScheduleKeyDeletion" not in tf


def test_a_named_deployment_without_a_baseline_is_no_usage_data_and_can_fail_the_gate(repo, capsys):
    (repo / ".iamgate.yml").write_text(NAMED + '  dev: {account: "333333333333", parameters: {Env: dev}}\n')
    write_baselines(repo / "baselines", USED)
    code, report = check_json([".", "--baselines", "baselines", "--fail-on", "never"], capsys)
    assert code == 0
    worker = next(p for p in report["principals"] if p["id"] == "WorkerRole")
    assert [d["name"] for d in worker["deployments"]] == ["staging", "prod", "dev"]
    assert worker["deployments"][2] == {"name": "dev", "account": "333333333333", "baseline": None, "source": None,
                                        "matched_by": "no baseline in account 333333333333", "own_grant": False}
    assert worker["actions"]["unused"] == [] and worker["actions"]["no_usage_data"] == ["sqs:deletequeue"]
    assert "dev has no baseline" in json.dumps(worker)
    assert worker["judged_in"] == f"judged in staging ({STAGING}) and prod ({PROD}); no baseline for dev"
    assert "deployment dev (333333333333) has no baseline for" in " ".join(report["deployment_notes"])
    code, report = check_json([".", "--baselines", "baselines", "--fail-on", "never", "--require-all-deployments"],
                              capsys)
    assert code == 1 and "all-deployments" in report["gate"]["summary"] and "dev (333333333333)" in \
        report["gate"]["summary"]
    (repo / ".iamgate.yml").write_text((repo / ".iamgate.yml").read_text() + "require-usage-data: all-deployments\n")
    assert main(["check", ".", "--baselines", "baselines", "--fail-on", "never"]) == 1


# -- the gate's own configuration and the Action ------------------------------------------------------------

def test_weakening_the_deployments_is_listed(catalog):
    from iamgate.action.config_changes import compare
    base = config_mod.parse({"deployments": {"staging": {"account": STAGING, "parameters": {"Env": "staging"}},
                                             "prod": {"account": PROD, "parameters": {"Env": "prod"}}},
                             "require-usage-data": "all-deployments"})
    head = config_mod.parse({"deployments": {"prod": {"account": PROD, "parameters": {"Env": "dev"}},
                                             "extra": {"account": "333333333333"}},
                             "require-usage-data": "true"})
    got = [(w.kind, w.subject, w.detail) for w in compare(base, head, catalog, defaults={})]
    assert ("require-usage-data-off", "require-usage-data", "all-deployments → true") in got
    assert ("deployment-changed", "staging", f"removed (was account {STAGING})") in got
    assert ("deployment-changed", "prod", "parameters changed") in got
    assert not [w for w in compare(head, head, catalog, defaults={})]  # adding "extra" is not weaker


def test_the_action_input_takes_all_deployments():
    from iamgate.action.inputs import InputError, Inputs
    assert Inputs.from_env({"INPUT_REQUIRE_USAGE_DATA": "all-deployments"}).require_usage_data == "all-deployments"
    assert Inputs.from_env({"INPUT_REQUIRE_USAGE_DATA": "true"}).require_usage_data is True
    with pytest.raises(InputError, match="true, false or all-deployments"):
        Inputs.from_env({"INPUT_REQUIRE_USAGE_DATA": "some"})


def test_a_grant_that_differs_per_deployment_is_judged_per_deployment(tmp_path, monkeypatch, capsys):
    """`!If [IsProd, …]`: prod grants sqs:PurgeQueue, staging does not. Each deployment is judged with its own
    grant, the report shows the difference, and no deployment's grant is left unresolved."""
    shutil.copytree(FIXTURES / "conditional", tmp_path / "repo")
    monkeypatch.chdir(tmp_path / "repo")
    Path(".iamgate.yml").write_text("deployments:\n  staging: {account: '111111111111', parameters: {Env: staging}}\n"
                                    "  prod: {account: '222222222222', parameters: {Env: prod}}\n")
    write_baselines(Path("b"), {(STAGING, "worker-staging"): ["sqs:SendMessage"], (PROD, "worker-prod"): []})
    code, report = check_json([".", "--baselines", "b"], capsys)
    worker = report["principals"][0]
    assert worker["actions"]["used"] == ["sqs:sendmessage"]  # used in staging: used
    assert worker["actions"]["unused"] == ["sqs:purgequeue"]  # granted only in prod, unused there
    assert [d["own_grant"] for d in worker["deployments"]] == [True, True]  # the default resolution grants neither
    assert worker["grant_differs"] == ["staging: worker.yaml:21: sqs:SendMessage",
                                       "prod: worker.yaml:21: sqs:SendMessage, sqs:PurgeQueue"]
    assert not [u for u in report["unresolved"] if "IsProd" in u["message"] or "Env" in u["message"]]
    assert code == 0
    assert main(["fix", ".", "--baselines", "b"]) == 0
    err = capsys.readouterr().err
    assert "the grant differs per deployment" in err and "prod: worker.yaml:21: sqs:SendMessage, sqs:PurgeQueue" in err


def test_check_judges_each_cdk_stage_in_its_account(tmp_path, capsys):
    write_baselines(tmp_path / "b", {(STAGING, "app-worker"): ["sqs:ReceiveMessage"],
                                     (PROD, "app-worker"): ["sqs:SendMessage"]})
    code, report = check_json([str(FIXTURES / "cdk-stages"), "--baselines", str(tmp_path / "b"), "--fail-on", "never"],
                              capsys)
    assert len(report["principals"]) == 1 and report["unmatched_baselines"] == []
    p = report["principals"][0]
    assert [(d["name"], d["account"]) for d in p["deployments"]] == [("Prod", PROD), ("Staging", STAGING)]
    assert p["actions"]["used"] == ["sqs:receivemessage", "sqs:sendmessage"]
    assert p["actions"]["unused"] == ["sqs:deletequeue"]  # granted in prod only, unused there
    assert p["judged_in"] == f"judged in Prod ({PROD}) and Staging ({STAGING})"


def test_a_var_file_that_leads_out_of_the_scanned_paths_is_not_read(repo, tmp_path):
    secret = tmp_path / "outside.tfvars"
    secret.write_text('env = "prod"\n')
    (repo / "envs" / "link.tfvars").symlink_to(secret)
    opts = ScanOptions(var_files=("envs/link.tfvars",), terraform_workspace="prod")
    got = scan(Workspace(["."], opts))
    assert [e.message for e in got.errors if e.file == "envs/link.tfvars"] == [
        "its real path leaves the scanned paths (a symbolic link); not read"]
    etl = next(p for p in got.principals if p.id == "aws_iam_role.etl")
    assert etl.name is None and etl.name_pattern == "etl-*"  # the value outside was not used
    assert next(p for p in got.principals if p.id == "aws_iam_role.svc").name == "svc-prod"


def test_the_scheduled_job_resolves_the_code_as_deployed_in_its_named_deployment(repo):
    """`iamgate baseline --deployment prod`: `worker-${Env}` is `worker-prod` there, so the job can name it."""
    from types import SimpleNamespace

    from iamgate.commands import UsageError
    from iamgate.commands.managed_policies import scan_with_account
    cfg = config_mod.parse(__import__("yaml").safe_load(NAMED))

    def args(account, deployment="prod"):
        return SimpleNamespace(paths=["."], param=[f"AWS::AccountId={account}"], deployment=deployment,
                               managed_policies=None, max_file_size=20, confine_to=None)
    names = {p.id: p.name for p in scan_with_account(args(PROD), cfg, None).principals}
    assert names["WorkerRole"] == "worker-prod" and names["aws_iam_role.etl"] == "etl-prod"
    assert names["aws_iam_role.svc"] == "svc-prod"
    with pytest.raises(UsageError, match="--deployment prod is account 222222222222 in the config, but this run is "
                                         "for account 111111111111"):
        scan_with_account(args(STAGING), cfg, None)
    assert {p.id: p.name for p in scan_with_account(args(STAGING, None), cfg, None).principals}["WorkerRole"] is None
