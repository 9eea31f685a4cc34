"""Issue 19, the policy-semantics half: what a policy really allows, resolve or block.

Each reproduction runs through `iamgate check` on a role, `app`, whose baseline saw only s3:GetObject,
and must not pass the gate; each control (a narrow grant in the same shape) still passes."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import cli_in_process, role_template

from iamgate.judge.conditions import ALWAYS_TRUE, effective, entry_always_true

BASELINE = {"schema": "iamgate.baseline/v1", "principal_arn": "arn:aws:iam::111122223333:role/app",
            "window": {"start": "2026-08-24T00:00:00Z", "end": "2026-11-22T00:00:00Z"},
            "sources": [{"kind": "cloudtrail"}],
            "used": {"s3:getobject": {"count": 3, "last_seen": "2026-11-20T00:00:00Z"}}}
GET = '{Effect: Allow, Action: "s3:GetObject", Resource: "*"}'


def gate(tmp_path: Path, files: dict[str, str], *args: str):
    """(exit code, JSON report) of `iamgate check .` with the s3:GetObject-only baseline."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "baselines").mkdir(exist_ok=True)
    (tmp_path / "baselines" / "app.json").write_text(json.dumps(BASELINE))
    r = cli_in_process("check", ".", "--baselines", "baselines", "--format", "json", *args, cwd=tmp_path)
    assert r.returncode in (0, 1, 2), r.stderr
    return r.returncode, json.loads(r.stdout)


def checks(report) -> dict[str, set]:
    out: dict[str, set] = {}
    for f in report["findings"]:
        out.setdefault(f["check"], set()).add(f["severity"])
    return out


def cfn(*statements: str) -> dict[str, str]:
    return {"app.yaml": role_template(GET, *statements)}


# -- 1. an unresolved part of an ARN means any value -----------------------------------------------

@pytest.mark.parametrize("allow, deny", [
    ('!Sub "arn:aws:iam::${AWS::AccountId}:*"', "arn:aws:iam::*AccountId*:*"),  # Why 2, as reproduced
    ('"arn:aws:iam::${aws:PrincipalAccount}:*"', "arn:aws:iam::*PrincipalAccount*:*"),  # an IAM policy variable
    ('!Sub "arn:aws:iam::${AWS::AccountId}:*"', "arn:aws:iam::$*"),
    ('!Sub "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AWS::StackName}-*"', "arn:aws:iam::*:role/$*"),
    ('"arn:aws:s3:::${aws:username}/*"', "arn:aws:s3:::?{*"),
])
def test_a_deny_on_placeholder_text_does_not_remove_the_grant(tmp_path, allow, deny):
    code, rep = gate(tmp_path, cfn(f'{{Effect: Allow, Action: "*", Resource: {allow}}}',
                                   f'{{Effect: Deny, Action: "*", Resource: "{deny}"}}'))
    assert code == 1, rep["gate"]
    [p] = rep["principals"]
    assert p["judged"]["granted"] > 20000  # `*` on the role's IAM resources, not "granted 1"


def test_a_deny_with_its_own_placeholder_covers_nothing(tmp_path):
    code, rep = gate(tmp_path, cfn('{Effect: Allow, Action: "iam:*", Resource: "arn:aws:iam::111122223333:role/x"}',
                                   '{Effect: Deny, Action: "iam:*", Resource: !Sub "arn:aws:iam::${AWS::AccountId}:*"}'))
    assert code == 1 and rep["principals"][0]["judged"]["granted"] > 1


def test_control_a_deny_that_covers_every_value_still_removes_the_grant(tmp_path):
    code, rep = gate(tmp_path, cfn('{Effect: Allow, Action: "iam:*", Resource: !Sub "arn:aws:iam::${AWS::AccountId}:*"}',
                                   '{Effect: Deny, Action: "iam:*", Resource: "arn:aws:iam::*:*"}'))
    assert code == 0, rep["findings"]
    assert rep["principals"][0]["judged"]["granted"] == 1


# -- 2. admin by another spelling -----------------------------------------------------------------

@pytest.mark.parametrize("statement", [
    '{Effect: Allow, NotAction: "iam:PassRole", Resource: "*"}',  # Why 3: 22,000 actions
    '{Effect: Allow, NotAction: ["iam:PassRole", "s3:DeleteBucket"], Resource: "*"}',
    '{Effect: Allow, Action: "*", Resource: "*", Condition: {StringLikeIfExists: {"aws:SourceVpce": "*"}}}',  # Why 3
    '{Effect: Allow, Action: "*", Resource: "*", Condition: {"Null": {"aws:PrincipalArn": "false"}}}',
    '{Effect: Allow, Action: "*", Resource: "*", Condition: {StringLike: {"aws:PrincipalArn": "*"}}}',
    '{Effect: Allow, Action: "*", Resource: "*", Condition: {"ForAllValues:StringLike": {"aws:TagKeys": "*"}}}',
    '{Effect: Allow, Action: "*", Resource: "*", Condition: {IpAddressIfExists: {"aws:SourceIp": ["0.0.0.0/0", "::/0"]}}}',
    '{Effect: Allow, Action: "*", Resource: "*", Condition: {DateGreaterThan: {"aws:CurrentTime": "1970-01-01T00:00:00Z"}}}',
    '{Effect: Allow, Action: "*", Resource: "*", Condition: {NumericGreaterThanEquals: {"aws:EpochTime": "0"}}}',
    '{Effect: Allow, Action: "*", Resource: "*", Condition: {ArnLikeIfExists: {"aws:SourceArn": "*"}}}',
    '{Effect: Allow, Action: "*", Resource: !Sub "${Everything}"}',  # an input with no value is any resource
    '{Effect: Allow, Action: "*", Resource: !Ref Everything}',
    '{Effect: Allow, Action: ["*:*"], Resource: "arn:*"}',
])
def test_admin_by_another_spelling_is_admin_wildcard(tmp_path, statement):
    files = cfn(statement)
    files["app.yaml"] = files["app.yaml"].replace("Resources:", "Parameters:\n  Everything: {Type: String}\nResources:")
    code, rep = gate(tmp_path, files)
    assert code == 1
    assert checks(rep).get("admin-wildcard") == {"critical"}, rep["findings"]


def test_admin_split_over_statements_is_judged_on_the_whole_grant(tmp_path):
    code, rep = gate(tmp_path, cfn('{Effect: Allow, NotAction: "s3:*", Resource: "*"}',
                                   '{Effect: Allow, Action: "s3:*", Resource: "*"}'))
    assert checks(rep).get("admin-wildcard") == {"critical"}


@pytest.mark.parametrize("statement", [
    '{Effect: Allow, Action: "*", Resource: "*", Condition: {StringLike: {"aws:SourceVpce": "*"}}}',  # key may be absent
    '{Effect: Allow, Action: "*", Resource: "*", Condition: {StringEquals: {"aws:PrincipalTag/team": "x"}}}',
    '{Effect: Allow, Action: "*", Resource: "*", Condition: {"Null": {"aws:SourceVpce": "false"}}}',
    '{Effect: Allow, Action: "*", Resource: "arn:aws:s3:::b/*"}',
    '{Effect: Allow, NotAction: ["iam:*", "organizations:*", "account:*"], Resource: "*"}',  # PowerUserAccess
])
def test_control_a_real_condition_or_narrower_grant_is_not_admin(tmp_path, statement):
    code, rep = gate(tmp_path, cfn(statement))
    assert "admin-wildcard" not in checks(rep)


def test_control_a_placeholder_for_a_resource_of_the_template_names_that_resource(tmp_path):
    text = role_template(GET, '{Effect: Allow, Action: "*", Resource: [!GetAtt Bucket.Arn, !Sub "${Bucket.Arn}/*"]}')
    text += "  Bucket:\n    Type: AWS::S3::Bucket\n"
    code, rep = gate(tmp_path, {"app.yaml": text})
    assert "admin-wildcard" not in checks(rep) and "passrole-wildcard" not in checks(rep)


def test_control_a_narrow_grant_passes(tmp_path):
    code, rep = gate(tmp_path, cfn())
    assert code == 0 and rep["findings"] == []


def test_the_always_true_table_is_cited_and_each_row_has_a_source():
    assert ALWAYS_TRUE and all(src.startswith("[") for _, _, src in ALWAYS_TRUE)
    import iamgate.judge.conditions as mod
    assert "docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html" in mod.__doc__


@pytest.mark.parametrize("op, key, value, expected", [
    ("StringLikeIfExists", "aws:SourceVpce", "*", True),
    ("StringLike", "aws:SourceVpce", "*", False),
    ("StringLike", "aws:RequestedRegion", "**", True),
    ("ForAnyValue:StringLike", "aws:TagKeys", "*", False),
    ("Null", "aws:CurrentTime", "false", True),
    ("Null", "aws:CurrentTime", "true", False),
    ("IpAddressIfExists", "aws:SourceIp", ["0.0.0.0/0"], False),
    ("IpAddress", "aws:SourceIp", ["0.0.0.0/0", "::/0"], False),
    ("DateGreaterThan", "aws:CurrentTime", "2020-01-01T00:00:00Z", True),  # every request from now on is later
    ("DateGreaterThan", "aws:CurrentTime", "2999-01-01T00:00:00Z", False),
    ("DateLessThan", "aws:CurrentTime", "2999-01-01T00:00:00Z", True),  # true for every request until 2999
    ("DateLessThan", "aws:CurrentTime", "2001-01-01T00:00:00Z", False),  # expired: it grants nothing now
    ("NumericGreaterThan", "aws:EpochTime", "0", True),
    ("NumericGreaterThan", "aws:MultiFactorAuthAge", "0", False),
    ("StringLikeIfExists", "aws:SourceVpce", "${aws:username}", False),
])
def test_always_true_entries(op, key, value, expected):
    assert entry_always_true(op, key, value) is expected
    assert (effective({op: {key: value}}) == {}) is expected


# -- PassRole: an always-true or wildcard iam:PassedToService does not restrict ---------------------

@pytest.mark.parametrize("condition", [
    '{StringLike: {"iam:PassedToService": "*"}}',
    '{StringLike: {"iam:PassedToService": "*.amazonaws.com"}}',
    '{StringLikeIfExists: {"iam:PassedToService": "*"}}',
    '{StringNotEquals: {"iam:PassedToService": "ec2.amazonaws.com"}}',
    '{"ForAllValues:StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}',
])
def test_passrole_with_a_condition_that_does_not_restrict_is_passrole_wildcard(tmp_path, condition):
    code, rep = gate(tmp_path, cfn(f'{{Effect: Allow, Action: "iam:PassRole", Resource: "*", Condition: {condition}}}'))
    assert code == 1 and checks(rep).get("passrole-wildcard") == {"high"}, rep["findings"]


@pytest.mark.parametrize("statements", [
    ['{Effect: Allow, Action: "iam:PassRole", Resource: "*", '
     'Condition: {StringEquals: {"iam:PassedToService": "lambda.amazonaws.com"}}}'],
    ['{Effect: Allow, Action: "iam:PassRole", Resource: "*"}',
     '{Effect: Deny, Action: "iam:PassRole", Resource: "*", '
     'Condition: {StringNotEquals: {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}}'],
])
def test_control_passrole_restricted_to_a_named_service(tmp_path, statements):
    code, rep = gate(tmp_path, cfn(*statements))
    assert "passrole-wildcard" not in checks(rep)


def test_a_deny_of_passrole_to_one_service_does_not_guard_the_rest(tmp_path):
    code, rep = gate(tmp_path, cfn('{Effect: Allow, Action: "iam:PassRole", Resource: "*"}',
                                   '{Effect: Deny, Action: "iam:PassRole", Resource: "*", '
                                   'Condition: {StringEquals: {"iam:PassedToService": "ec2.amazonaws.com"}}}'))
    assert checks(rep).get("passrole-wildcard") == {"high"}


# -- 3. resolve, or block: managed policies ---------------------------------------------------------

def cfn_managed(ref: str, head: str = "") -> dict[str, str]:
    text = role_template(GET).replace("      Policies:", f"      ManagedPolicyArns: [{ref}]\n      Policies:")
    return {"app.yaml": head + text}


@pytest.mark.parametrize("ref, words", [
    ("!ImportValue AdminPolicyArn", "ImportValue"),  # Why 4
    ('"{{resolve:ssm:/p}}"', "dynamic reference"),  # Why 4
    ('"arn:aws:iam::111122223333:policy/not-cached"', "not in the managed-policy cache"),  # Why 4
    ('"arn:aws:iam::aws:policy/NotAnAwsManagedPolicyXyz"', "not in the managed-policy cache"),
    ('"{{resolve:secretsmanager:arn}}"', "dynamic reference"),
    ("!Ref PolicyArn", "PolicyArn"),
])
def test_an_attached_managed_policy_that_cannot_be_resolved_is_an_unresolved_grant(tmp_path, ref, words):
    head = "Parameters:\n  PolicyArn: {Type: String}\n" if "PolicyArn" in ref else ""
    code, rep = gate(tmp_path, cfn_managed(ref, head))
    assert code == 1
    [f] = [f for f in rep["findings"] if f["check"] == "unresolved-grant"]
    assert f["severity"] == "high" and f["principal"] == "AppRole" and words in f["message"], f


def test_control_an_aws_managed_policy_from_the_bundle_is_judged(tmp_path):
    code, rep = gate(tmp_path, cfn_managed('"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"'))
    assert "unresolved-grant" not in checks(rep)


TF_ROLE = textwrap.dedent("""\
    resource "aws_iam_role" "app" {
      name               = "app"
      assume_role_policy = "{}"
    }
    resource "aws_iam_role_policy" "get" {
      role   = aws_iam_role.app.id
      policy = jsonencode({Version = "2012-10-17", Statement = [{Effect = "Allow", Action = "s3:GetObject", Resource = "*"}]})
    }
    """)


@pytest.mark.parametrize("lookup", ['name = "AdministratorAccess"',
                                    'arn = "arn:aws:iam::aws:policy/AdministratorAccess"'])
def test_data_aws_iam_policy_resolves_aws_managed_policies_from_the_bundle(tmp_path, lookup):
    attach = textwrap.dedent(f"""\
        data "aws_iam_policy" "admin" {{
          {lookup}
        }}
        resource "aws_iam_role_policy_attachment" "a" {{
          role       = aws_iam_role.app.name
          policy_arn = data.aws_iam_policy.admin.arn
        }}
        """)
    code, rep = gate(tmp_path, {"main.tf": TF_ROLE + attach})  # Why 4
    assert code == 1 and checks(rep).get("admin-wildcard") == {"critical"}, rep["findings"]


def test_data_aws_iam_policy_of_a_customer_policy_is_an_unresolved_grant(tmp_path):
    attach = textwrap.dedent("""\
        data "aws_iam_policy" "mine" {
          name = "team-boundary-custom"
        }
        resource "aws_iam_role_policy_attachment" "a" {
          role       = aws_iam_role.app.name
          policy_arn = data.aws_iam_policy.mine.arn
        }
        """)
    code, rep = gate(tmp_path, {"main.tf": TF_ROLE + attach})
    assert code == 1 and checks(rep).get("unresolved-grant") == {"high"}, rep["findings"]


def test_control_a_terraform_role_with_a_narrow_policy_passes(tmp_path):
    code, rep = gate(tmp_path, {"main.tf": TF_ROLE})
    assert code == 0 and rep["findings"] == []


# -- template-level transforms ---------------------------------------------------------------------

@pytest.mark.parametrize("transform", [
    "Transform: [SomeMacro]\n",  # Why 5
    "Transform: {Name: AWS::Include, Parameters: {Location: s3://bucket/snippet.yaml}}\n",  # Why 5
    "Transform: SomeMacro\n",
    "Transform: [AWS::LanguageExtensions, SomeMacro]\n",
])
def test_a_template_macro_or_include_is_an_unresolved_grant_for_every_principal(tmp_path, transform):
    code, rep = gate(tmp_path, {"app.yaml": transform + role_template(GET)})
    assert code == 1
    [f] = [f for f in rep["findings"] if f["check"] == "unresolved-grant"]
    assert f["principal"] == "AppRole" and "transform" in f["message"]


def test_control_language_extensions_is_evaluated(tmp_path):
    code, rep = gate(tmp_path, {"app.yaml": "Transform: AWS::LanguageExtensions\n" + role_template(GET)})
    assert code == 0 and rep["findings"] == []


# -- a Condition over a parameter with no pinned value grants the union of its branches (Why 9) -------

PARAM = "Parameters:\n  Env: {Type: String, Default: dev}\nConditions:\n  IsProd: !Equals [!Ref Env, prod]\n"


@pytest.mark.parametrize("statement", [
    '!If [IsProd, {Effect: Allow, Action: "*", Resource: "*"}, !Ref AWS::NoValue]',  # Why 9, as reproduced
    '!If [IsProd, {Effect: Allow, Action: "iam:*", Resource: "*"}, {Effect: Allow, Action: "s3:GetObject", Resource: "*"}]',
    '{Effect: Allow, Action: [!If [IsProd, "iam:*", !Ref AWS::NoValue]], Resource: "*"}',
    '{Effect: Allow, Action: !If [IsProd, "iam:*", "s3:GetObject"], Resource: "*"}',
    '{Effect: Allow, Action: "*", Resource: "*", Condition: !If [IsProd, !Ref AWS::NoValue, {Bool: {"aws:SecureTransport": "false"}}]}',
])
def test_a_parameter_default_does_not_decide_a_condition(tmp_path, statement):
    code, rep = gate(tmp_path, {"app.yaml": PARAM + role_template(GET, statement)})
    assert code == 1, rep["findings"]
    notes = [f["message"] for f in rep["findings"] if f["check"] in ("unresolved-policy", "unresolved-grant")]
    assert any("IsProd" in n and "Env" in n for n in notes), notes


@pytest.mark.parametrize("statement", [
    '!If [IsProd, !Ref AWS::NoValue, {Effect: Deny, Action: "iam:*", Resource: "*"}]',
    '{Effect: Deny, Action: [!If [IsProd, !Ref AWS::NoValue, "iam:*"]], Resource: "*"}',
])
def test_a_deny_in_an_undecided_branch_may_not_apply(tmp_path, statement):
    code, rep = gate(tmp_path, {"app.yaml": PARAM + role_template(GET, '{Effect: Allow, Action: "iam:*", Resource: "*"}',
                                                                statement)})
    assert code == 1 and rep["principals"][0]["judged"]["granted"] > 100


def test_an_allow_notaction_from_an_undecided_branch_excludes_nothing_more(tmp_path):
    st = '{Effect: Allow, NotAction: [!If [IsProd, "s3:GetObject", "iam:*"]], Resource: "*"}'
    code, rep = gate(tmp_path, {"app.yaml": PARAM + role_template(st)})
    assert checks(rep).get("admin-wildcard") == {"critical"}


def test_control_a_pinned_parameter_decides_the_condition(tmp_path):
    st = '!If [IsProd, {Effect: Allow, Action: "*", Resource: "*"}, !Ref AWS::NoValue]'
    code, rep = gate(tmp_path, {"app.yaml": PARAM + role_template(GET, st)}, "--param", "Env=dev")
    assert code == 0 and rep["findings"] == [], rep["findings"]


# -- every principal kind: IAM Identity Center permission sets (Why 10) ------------------------------

SSO_CFN = textwrap.dedent("""\
    Resources:
      Admins:
        Type: AWS::SSO::PermissionSet
        Properties:
          InstanceArn: arn:aws:sso:::instance/ssoins-1
          Name: Admins
          ManagedPolicies: [{managed}]
          {extra}
    """)


def sso_baseline(tmp_path: Path) -> None:
    (tmp_path / "baselines").mkdir(exist_ok=True)
    (tmp_path / "baselines" / "sso.json").write_text(json.dumps({
        **BASELINE, "principal_arn": "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/"
                                     "AWSReservedSSO_Admins_0123456789abcdef"}))


def test_a_cloudformation_permission_set_with_administrator_access_is_admin(tmp_path):
    sso_baseline(tmp_path)
    code, rep = gate(tmp_path, {"sso.yaml": SSO_CFN.format(managed="arn:aws:iam::aws:policy/AdministratorAccess",
                                                           extra="")})
    assert code == 1
    [p] = [p for p in rep["principals"] if p["id"] == "Admins"]
    assert p["kind"] == "permission-set" and p["baseline"]  # matched to the role it is provisioned as
    assert checks(rep).get("admin-wildcard") == {"critical"}


def test_a_permission_set_inline_policy_customer_reference_and_boundary(tmp_path):
    extra = ('InlinePolicy: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "iam:*", Resource: "*"}]}\n'
             '      CustomerManagedPolicyReferences: [{Name: team-policy, Path: /teams/}]\n'
             '      PermissionsBoundary: {ManagedPolicyArn: arn:aws:iam::aws:policy/ReadOnlyAccess}')
    code, rep = gate(tmp_path, {"sso.yaml": SSO_CFN.format(managed="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
                                                           extra=extra)})
    assert code == 1
    [f] = [f for f in rep["findings"] if f["check"] == "unresolved-grant"]
    assert f["principal"] == "Admins" and "/teams/team-policy" in f["message"]
    assert any("permissions boundary" in f["message"] for f in rep["findings"] if f["check"] == "unresolved-policy")
    [p] = rep["principals"]
    assert p["judged"]["granted"] > 100  # iam:* from the inline policy


SSO_TF = textwrap.dedent("""\
    resource "aws_ssoadmin_permission_set" "admins" {
      name         = "Admins"
      instance_arn = "arn:aws:sso:::instance/ssoins-1"
    }
    resource "aws_ssoadmin_managed_policy_attachment" "admin" {
      instance_arn       = "arn:aws:sso:::instance/ssoins-1"
      managed_policy_arn = "arn:aws:iam::aws:policy/AdministratorAccess"
      permission_set_arn = aws_ssoadmin_permission_set.admins.arn
    }
    resource "aws_ssoadmin_permission_set_inline_policy" "inline" {
      instance_arn       = "arn:aws:sso:::instance/ssoins-1"
      permission_set_arn = aws_ssoadmin_permission_set.admins.arn
      inline_policy      = jsonencode({Version = "2012-10-17", Statement = [{Effect = "Allow", Action = "s3:GetObject", Resource = "*"}]})
    }
    resource "aws_ssoadmin_customer_managed_policy_attachment" "cm" {
      instance_arn       = "arn:aws:sso:::instance/ssoins-1"
      permission_set_arn = aws_ssoadmin_permission_set.admins.arn
      customer_managed_policy_reference {
        name = "team-policy"
        path = "/"
      }
    }
    resource "aws_ssoadmin_permissions_boundary_attachment" "b" {
      instance_arn       = "arn:aws:sso:::instance/ssoins-1"
      permission_set_arn = aws_ssoadmin_permission_set.admins.arn
      permissions_boundary {
        managed_policy_arn = "arn:aws:iam::aws:policy/ReadOnlyAccess"
      }
    }
    """)


def test_terraform_permission_sets_are_principals(tmp_path):
    sso_baseline(tmp_path)
    code, rep = gate(tmp_path, {"main.tf": SSO_TF})
    assert code == 1
    [p] = rep["principals"]
    assert (p["id"], p["kind"]) == ("aws_ssoadmin_permission_set.admins", "permission-set") and p["baseline"]
    found = checks(rep)
    assert found.get("admin-wildcard") == {"critical"} and found.get("unresolved-grant") == {"high"}
    policies = {pol["name"] for pol in p["policies"]}
    assert {"AdministratorAccess", "inline_policy"} <= policies, policies


def test_control_a_narrow_permission_set_passes(tmp_path):
    sso_baseline(tmp_path)
    inline = 'InlinePolicy: {Statement: [{Effect: Allow, Action: "s3:GetObject", Resource: "*"}]}'
    code, rep = gate(tmp_path, {"sso.yaml": SSO_CFN.replace("ManagedPolicies: [{managed}]", "").format(extra=inline)})
    assert code == 0 and rep["findings"] == [], rep["findings"]


# -- IaC only running code can read (Why 10) --------------------------------------------------------

SERVERLESS_TS = "const config = {service: 'app', provider: {name: 'aws', iam: {role: {statements: " \
                "[{Effect: 'Allow', Action: ['*'], Resource: '*'}]}}}};\nmodule.exports = config;\n"


@pytest.mark.parametrize("name", ["serverless.ts", "svc/serverless.js", "serverless.mjs"])
def test_a_serverless_service_written_as_code_is_skipped_and_an_error(tmp_path, name):
    code, rep = gate(tmp_path, {"app.yaml": role_template(GET), name: SERVERLESS_TS})
    assert code == 2 and rep["gate"]["result"] == "error"
    [s] = [s for s in rep["skipped"] if s["file"] == name]
    assert "running" in s["reason"] or "run it" in s["reason"]
    assert any(e["file"] == name for e in rep["errors"])
    text = cli_in_process("check", ".", "--baselines", "baselines", "--color", "never", cwd=tmp_path).stdout
    assert "PASS" not in text and name in text


def test_control_the_config_can_exclude_a_code_defined_service(tmp_path):
    files = {"app.yaml": role_template(GET), "svc/serverless.ts": SERVERLESS_TS, ".iamgate.yml": "exclude: [svc]\n"}
    code, rep = gate(tmp_path, files)
    assert code == 0 and rep["gate"]["result"] == "pass" and not rep["errors"], rep["gate"]
    (tmp_path / ".iamgate.yml").write_text("exclude: ['svc/serverless.ts']\n")
    assert gate(tmp_path, {})[0] == 0


# -- output (Why 11) --------------------------------------------------------------------------------

def test_fix_escapes_control_characters_on_a_terminal_and_writes_them_raw_into_a_pipe(tmp_path):
    from conftest import in_a_terminal
    tf = TF_ROLE.replace('Action = "s3:GetObject"', 'Action = ["s3:GetObject", "sqs:CreateQueue"]').replace(
        "role   = aws_iam_role.app.id", "role   = aws_iam_role.app.id # x\x1b[2J\x07\ry")
    gate(tmp_path, {"main.tf": tf})
    args = ["fix", "main.tf", "--baselines", "baselines", "--quiet"]
    code, shown = in_a_terminal(args, {"AWS_EC2_METADATA_DISABLED": "true"}, tmp_path)
    assert code == 0 and "sqs:CreateQueue" in shown, shown  # the diff is there
    assert "\x1b" not in shown and "\x07" not in shown and "\r" not in shown.replace("\r\n", "\n")
    assert "# x\\x1b[2J\\x07\\x0d" in shown
    import os
    import subprocess
    import sys
    piped = subprocess.run([sys.executable, "-m", "iamgate", *args], cwd=tmp_path, capture_output=True,
                           env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"}, timeout=300)
    assert b"# x\x1b[2J\x07\r" in piped.stdout  # a patch file keeps the bytes the file has


@pytest.mark.parametrize("fmt", ["markdown"])  # the PR comment and the job summary are this report
def test_a_url_from_the_repository_is_not_autolinked_by_github(tmp_path, fmt):
    text = role_template('{Effect: Allow, Action: "*", Resource: "*"}').replace(
        "RoleName: app", "RoleName: https://evil.example/x")
    (tmp_path / "www.evil.example.yaml").write_text(text)
    r = cli_in_process("check", ".", "--format", fmt, cwd=tmp_path)
    assert r.returncode == 1 and "evil.example" in r.stdout
    import re
    outside_code = re.sub(r"`[^`\n]*`", "", r.stdout)  # GitHub never autolinks in a code span
    assert not re.search(r"https?://evil|(?<![\w.])www\.evil", outside_code), outside_code
    assert "https:\u200b//evil.example" in r.stdout or "https\\:\u200b//evil" in r.stdout


def test_an_aws_managed_policy_in_an_unknown_partition_is_read_from_the_bundle(tmp_path):
    attach = textwrap.dedent("""\
        data "aws_partition" "current" {}
        resource "aws_iam_role_policy_attachment" "a" {
          role       = aws_iam_role.app.name
          policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AdministratorAccess"
        }
        """)
    code, rep = gate(tmp_path, {"main.tf": TF_ROLE + attach})
    assert code == 1 and checks(rep).get("admin-wildcard") == {"critical"} and "unresolved-grant" not in checks(rep)


@pytest.mark.parametrize("condition", [
    '!If [IsProd, !Ref AWS::NoValue, {Bool: {"aws:SecureTransport": "false"}}]',
    '{Bool: !If [IsProd, !Ref AWS::NoValue, {"aws:SecureTransport": "false"}]}',
])
def test_an_allow_condition_from_an_undecided_branch_may_be_absent(tmp_path, condition):
    st = f'{{Effect: Allow, Action: "*", Resource: "*", Condition: {condition}}}'
    code, rep = gate(tmp_path, {"app.yaml": PARAM + role_template(GET, st)})
    assert checks(rep).get("admin-wildcard") == {"critical"}, rep["findings"]


def test_excluding_a_path_is_listed_as_a_weakening():
    from iamgate.action.config_changes import compare
    from iamgate.config import parse
    from iamgate.reference.catalog import load_catalog
    base = parse({"exclude": ["legacy/*"]})
    assert compare(base, parse({"exclude": ["legacy/*"]}), load_catalog()) == []
    [w] = compare(base, parse({"exclude": ["legacy/*", "services/api/serverless.ts"]}), load_catalog())
    assert (w.kind, w.subject) == ("exclude-added", "services/api/serverless.ts")
