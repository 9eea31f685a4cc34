"""Issue 23, the rest of `fix`: narrowing a wildcard ARN wider than the used ones (not only `"*"`), splits that
keep what they cannot narrow as written, and narrowings that never grant what the statement did not (another
account's resource, a bound list of ARNs, an IAM policy variable). Through `iamgate check` / `iamgate fix`."""
from __future__ import annotations

import json

import hcl2
import pytest

from iamgate import cli
from iamgate.formats.json import expanded
from iamgate.sources.loaders import load_yaml
from test_resources import ACCOUNT, CFN, CFN_JSON, KEY, SECRET, TABLE, TF, record, run, scan, scenario

PARAM = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/orders/prod/endpoint"

HEAD = CFN[:CFN.index("              - Effect: Allow\n                Action: s3:GetObject")]  # up to the statements

WILD = HEAD + """              - Effect: Allow
                Action: s3:GetObject
                Resource: arn:aws:s3:::*
              - Effect: Allow
                Action: dynamodb:GetItem
                Resource: !Sub "arn:${AWS::Partition}:dynamodb:*:*:table/*"
              - Effect: Allow
                Action: ssm:GetParameter
                Resource: ["arn:aws:ssm:us-east-1:111122223333:parameter/orders/*"]
              - Effect: Allow
                Action: kms:Decrypt
                Resource: arn:aws:kms:*:444455556666:key/*
              - Effect: Allow
                Action: secretsmanager:GetSecretValue
                Resource: arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/orders/db-AbCdEf
"""


def findings(capsys, *extra) -> dict:
    _, out = run(capsys, "check", "infra", "--baselines", "b", "--format", "json", *extra)
    return {f["actions"][0]: f for f in expanded(json.loads(out))["findings"] if f["check"] == "resource-scope"}


def statements(text: str) -> list[dict]:
    return load_yaml(text)["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def test_check_and_fix_narrow_a_wildcard_arn_wider_than_the_used_ones(tmp_path, catalog, capsys, monkeypatch):
    path = scan(tmp_path, "template.yaml", WILD, catalog)
    monkeypatch.chdir(tmp_path)
    found = findings(capsys)
    # `arn:aws:s3:::*` is wider than the used prefix `orders-exports/exports/*` (itself a wildcard)
    assert found["s3:getobject"]["resources"] == ["arn:aws:s3:::orders-exports/exports/*"]
    assert "s3:GetObject on arn:aws:s3:::*, used on 1 object prefix" in found["s3:getobject"]["message"]
    assert found["dynamodb:getitem"]["resources"] == [TABLE]
    assert found["ssm:getparameter"]["resources"] == [PARAM]
    # another account's keys cover none of the used ones: no proof it is too wide there; an exact ARN is not wide
    assert "kms:decrypt" not in found and "secretsmanager:getsecretvalue" not in found
    code, out = run(capsys, "fix", "infra", "--baselines", "b", "--write")
    text = path.read_text()
    sts = statements(text)
    assert sts[0]["Resource"] == ["arn:aws:s3:::orders-exports/exports/*"]
    assert "                Resource:\n                  - !GetAtt OrdersTable.Arn\n" in text
    assert sts[2]["Resource"] == [PARAM]
    assert sts[3]["Resource"] == "arn:aws:kms:*:444455556666:key/*"  # untouched
    assert sts[4]["Resource"] == SECRET
    assert not findings(capsys)


def test_a_policy_variable_is_never_narrowed(tmp_path, catalog, capsys, monkeypatch):
    text = HEAD + """              - Effect: Allow
                Action: s3:GetObject
                Resource: arn:aws:s3:::orders-exports/${aws:username}/*
              - Effect: Allow
                Action: s3:GetObject
                Resource: arn:aws:s3:::orders-exports/exp?rts/*
"""
    path = scan(tmp_path, "template.yaml", text, catalog)
    monkeypatch.chdir(tmp_path)
    assert not findings(capsys)
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    assert path.read_text() == text


def test_fix_narrows_wildcard_arns_in_cloudformation_json_and_terraform(tmp_path, catalog, capsys, monkeypatch):
    doc = json.loads(json.dumps(CFN_JSON))
    sts = doc["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    sts[0]["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"}
    sts[1]["Resource"] = ["arn:aws:ssm:*:*:parameter/*"]
    path = scan(tmp_path / "j", "template.json", json.dumps(doc, indent=2), catalog)
    monkeypatch.chdir(tmp_path / "j")
    assert set(findings(capsys)) == {"secretsmanager:getsecretvalue", "ssm:getparameter"}
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    sts = json.loads(path.read_text())["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert sts[0]["Resource"] == [{"Ref": "Secret"}]
    assert sts[1]["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:"
                                              "parameter/orders/prod/endpoint"}]  # the template uses AccountId
    assert not findings(capsys)

    tf = TF.replace('Action   = "kms:Decrypt"\n        Resource = "*"',
                    'Action   = "kms:Decrypt"\n        Resource = "arn:aws:kms:*:*:key/*"').replace(
        'resources = ["*"]', 'resources = ["arn:${data.aws_partition.current.partition}:ssm:*:*:parameter/*"]')
    path = scan(tmp_path / "t", "main.tf", 'data "aws_partition" "current" {}\n' + tf, catalog)
    monkeypatch.chdir(tmp_path / "t")
    assert {"kms:decrypt", "ssm:getparameter"} <= set(findings(capsys))
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    text = path.read_text()
    assert ('Resource = ["arn:aws:kms:us-east-1:${data.aws_caller_identity.current.account_id}:key/'
            '1234abcd-12ab-34cd-56ef-1234567890ab"]') in text
    # the partition stays the variable the pattern wrote
    assert ('resources = ["arn:${data.aws_partition.current.partition}:ssm:us-east-1:'
            '${data.aws_caller_identity.current.account_id}:parameter/orders/prod/endpoint"]') in text
    hcl2.loads(text)


def test_a_bounded_list_narrows_to_its_prefix_never_to_the_listed_arns(tmp_path, catalog, capsys, monkeypatch):
    """57 tables used, 50 listed: narrowing to the 50 would take away 7 the role uses."""
    records = [record("dynamodb.amazonaws.com", "DescribeTable", {"tableName": f"t-{i:03d}"}, i=i) for i in range(57)]
    text = HEAD + """              - Effect: Allow
                Action: dynamodb:DescribeTable
                Resource: arn:aws:dynamodb:*:*:table/*
"""
    path = scan(tmp_path, "template.yaml", text, catalog, records)
    monkeypatch.chdir(tmp_path)
    found = findings(capsys)["dynamodb:describetable"]
    assert found["resources"] == [f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t-0*"]
    assert "used on 57 tables" in found["message"]
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    assert statements(path.read_text())[0]["Resource"] == [f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t-0*"]


def narrowed_with_a_second_key(tmp_path, catalog, capsys, monkeypatch, other: str, region: str = "us-east-1"):
    """The Resource `fix` writes for `kms:Decrypt` on "*" in a template using AWS::AccountId, where the role
    used the scenario's key and `other`."""
    account = other.split(":")[4]
    records = scenario() + [record("kms.amazonaws.com", "Decrypt", {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
                                   [{"accountId": account, "type": "AWS::KMS::Key", "ARN": other}], i=7,
                                   region=region)]
    text = HEAD.replace("      RoleName: orders-ingest", "      RoleName: orders-ingest\n"
                        "      Description: !Sub \"ingest in ${AWS::AccountId}\"") + """              - Effect: Allow
                Action: kms:Decrypt
                Resource: "*"
"""
    path = scan(tmp_path, "template.yaml", text, catalog, records)
    monkeypatch.chdir(tmp_path)
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    return statements(path.read_text())[0]["Resource"]


def test_another_accounts_resource_keeps_its_account(tmp_path, catalog, capsys, monkeypatch):
    """The template uses AWS::AccountId, but the key is another account's: writing `${AWS::AccountId}` would
    name a key the role never used and drop the one it did."""
    res = narrowed_with_a_second_key(tmp_path, catalog, capsys, monkeypatch,
                                     "arn:aws:kms:us-east-1:444455556666:key/9999abcd-12ab-34cd-56ef-1234567890ab")
    assert {"Fn::Sub": "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/"
                       "1234abcd-12ab-34cd-56ef-1234567890ab"} in res
    assert {"Fn::Sub": "arn:${AWS::Partition}:kms:${AWS::Region}:444455556666:key/"
                       "9999abcd-12ab-34cd-56ef-1234567890ab"} in res


def test_keys_used_in_two_regions_keep_their_regions(tmp_path, catalog, capsys, monkeypatch):
    """`${AWS::Region}` is the stack's one region: of keys used in us-east-1 and eu-west-1, at most one is in
    it, and writing it for both would drop the other key from the role."""
    res = narrowed_with_a_second_key(tmp_path, catalog, capsys, monkeypatch,
                                     f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/9999abcd-12ab-34cd-56ef-1234567890ab",
                                     region="eu-west-1")
    assert sorted(map(str, res)) == sorted(map(str, [
        {"Fn::Sub": "arn:${AWS::Partition}:kms:us-east-1:${AWS::AccountId}:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
        {"Fn::Sub": "arn:${AWS::Partition}:kms:eu-west-1:${AWS::AccountId}:key/9999abcd-12ab-34cd-56ef-1234567890ab"}]))


def test_another_accounts_table_of_the_same_name_is_not_the_stacks(tmp_path, catalog, capsys, monkeypatch):
    """The role read a table named Orders in another account: the template's own OrdersTable has that name,
    but `!GetAtt OrdersTable.Arn` would grant the stack's table and drop the one the role used."""
    other = "arn:aws:dynamodb:us-east-1:444455556666:table/Orders"
    records = [r for r in scenario() if r["eventSource"] != "dynamodb.amazonaws.com"] + [
        record("dynamodb.amazonaws.com", "GetItem", {"tableName": other}, i=7)]
    text = CFN.replace("Action: dynamodb:GetItem\n                Resource: !GetAtt OrdersTable.Arn",
                       "Action: dynamodb:GetItem\n                Resource: '*'")
    path = scan(tmp_path, "template.yaml", text, catalog, records)
    monkeypatch.chdir(tmp_path)
    assert findings(capsys)["dynamodb:getitem"]["resources"] == [other]
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    res = [st["Resource"] for st in statements(path.read_text()) if st["Action"] == "dynamodb:GetItem"]
    assert res == [[other]]


def test_a_block_list_of_one_star_is_narrowed_and_of_two_items_left_as_written(tmp_path, catalog, capsys,
                                                                                monkeypatch):
    text = HEAD + """              - Effect: Allow
                Action: kms:Decrypt
                Resource:
                  - "*"  # any key
              - Effect: Allow
                Action: secretsmanager:GetSecretValue
                Resource:
                  - "*"
                  - arn:aws:secretsmanager:us-east-1:111122223333:secret:other-AbCdEf
"""
    path = scan(tmp_path, "template.yaml", text, catalog)
    monkeypatch.chdir(tmp_path)
    assert {"kms:decrypt", "secretsmanager:getsecretvalue"} <= set(findings(capsys))
    cli.main(["fix", "infra", "--baselines", "b", "--write"])
    assert "Resource not narrowed: it is not one literal" in capsys.readouterr().err
    sts = statements(path.read_text())
    assert sts[0]["Resource"] == [KEY]
    assert sts[1]["Resource"] == ["*", "arn:aws:secretsmanager:us-east-1:111122223333:secret:other-AbCdEf"]


def test_serverless_statements_are_narrowed_in_place(tmp_path, catalog, capsys, monkeypatch):
    """serverless.yml's provider.iam.role.statements are YAML statements: narrowed like a template's."""
    text = """service: orders
provider:
  name: aws
  runtime: python3.12
  iam:
    role:
      name: orders-ingest
      statements:
        - Effect: Allow
          Action: kms:Decrypt
          Resource: "*"
        - Effect: Allow
          Action:
            - secretsmanager:GetSecretValue
          Resource:
            - "*"
functions:
  ingest:
    handler: handler.main
"""
    path = scan(tmp_path, "serverless.yml", text, catalog)
    monkeypatch.chdir(tmp_path)
    assert set(findings(capsys)) == {"kms:decrypt", "secretsmanager:getsecretvalue"}
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    sts = load_yaml(path.read_text())["provider"]["iam"]["role"]["statements"]
    assert [st["Resource"] for st in sts] == [[KEY], [SECRET]]
    assert not findings(capsys)


def test_a_policy_json_file_is_narrowed_in_place(tmp_path, catalog, capsys, monkeypatch):
    text = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}, indent=2)
    path = scan(tmp_path, "ingest-policy.json", text, catalog)
    (tmp_path / "cfg.yml").write_text("principals:\n  infra/ingest-policy.json: orders-ingest\n")
    monkeypatch.chdir(tmp_path)
    assert set(findings(capsys, "--config", "cfg.yml")) == {"kms:decrypt"}
    run(capsys, "fix", "infra", "--baselines", "b", "--config", "cfg.yml", "--write")
    assert json.loads(path.read_text())["Statement"][0]["Resource"] == [KEY]


SPLIT = HEAD + """              - Sid: ReadOrders
                Effect: Allow
                Action: [secretsmanager:GetSecretValue, ssm:GetParameter, dynamodb:DescribeTable]
                Resource: !Sub "arn:${AWS::Partition}:*:*:*:*"
"""


@pytest.mark.parametrize("transform", ["", "Transform: AWS::Serverless-2016-10-31\n"], ids=["cfn", "sam"])
def test_a_split_keeps_the_wildcard_arn_for_actions_without_resource_data(tmp_path, catalog, capsys, monkeypatch,
                                                                          transform):
    records = scenario() + [record("dynamodb.amazonaws.com", "DescribeTable", None, i=8)]  # names no table
    path = scan(tmp_path, "template.yaml", transform + SPLIT, catalog, records)
    monkeypatch.chdir(tmp_path)
    assert set(findings(capsys)) == {"secretsmanager:getsecretvalue", "ssm:getparameter"}
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    text = path.read_text()
    sts = statements(text)
    assert sts == [
        {"Sid": "ReadOrders", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [SECRET]},
        {"Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": [PARAM]},
        {"Effect": "Allow", "Action": ["dynamodb:DescribeTable"],
         "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:*:*:*:*"}]}]
    assert '- !Sub "arn:${AWS::Partition}:*:*:*:*"' in text  # as it was written
    assert not findings(capsys)


def test_a_split_with_a_condition_is_left_for_a_person_and_says_so(tmp_path, catalog, capsys, monkeypatch):
    text = SPLIT.replace('Resource: !Sub "arn:${AWS::Partition}:*:*:*:*"\n',
                         'Resource: "*"\n                Condition:\n                  IpAddress:\n'
                         '                    aws:SourceIp: 203.0.113.0/24\n').replace(
        ", dynamodb:DescribeTable", "")
    path = scan(tmp_path, "template.yaml", text, catalog)
    monkeypatch.chdir(tmp_path)
    assert set(findings(capsys)) == {"secretsmanager:getsecretvalue", "ssm:getparameter"}
    cli.main(["fix", "infra", "--baselines", "b", "--write"])
    out = capsys.readouterr().err
    assert "Resource not narrowed: its actions need different resources and it has a Condition" in out
    assert "nothing to fix" not in out and "nothing rewritten; see the 1 warning above for what to fix by hand" in out
    assert path.read_text() == text


def test_terraform_split_keeps_the_sid_and_the_written_resource(tmp_path, catalog, capsys, monkeypatch):
    records = scenario() + [record("dynamodb.amazonaws.com", "DescribeTable", None, i=8)]
    tf = TF.replace('''      {
        Effect   = "Allow"
        Action   = "kms:Decrypt"
        Resource = "*"
      },''', '''      {
        Sid      = "Keys"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "dynamodb:DescribeTable"]
        Resource = "arn:aws:*"
      },''')
    path = scan(tmp_path, "main.tf", tf, catalog, records)
    monkeypatch.chdir(tmp_path)
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    text = path.read_text()
    doc = hcl2.loads(text)
    assert 'Sid      = "Keys"\n' in text and text.count("Sid") == 1
    assert 'Action   = ["dynamodb:DescribeTable"]\n        Resource = ["arn:aws:*"]' in text
    assert 'Action   = ["kms:Decrypt"]\n        Resource = ["arn:aws:kms:us-east-1:${data.aws_caller_identity' in text
    assert doc


def suggestions_for(tmp_path, catalog, monkeypatch, text: str, records=None):
    from iamgate.config import Config
    from iamgate.fix.files import fix_files
    from iamgate.fix.plan import plan
    from iamgate.fix.suggestions import plan_suggestions
    from iamgate.pipeline import analyse
    scan(tmp_path, "template.yaml", text, catalog, records)
    monkeypatch.chdir(tmp_path)
    report = analyse(["infra"], ["b"], Config(), base=str(tmp_path))
    remediation = plan(report.results, catalog, Config())
    files, problems = fix_files(remediation, tmp_path)
    everything = {"infra/template.yaml": [(1, len(text.splitlines()))]}
    return plan_suggestions(remediation, files, everything, "k1", lambda f: f), files


def test_pr_suggestions_carry_the_wildcard_narrowing_and_the_split(tmp_path, catalog, monkeypatch):
    sp, files = suggestions_for(tmp_path / "w", catalog, monkeypatch, WILD)
    bodies = "\n".join(s.body for s in sp.suggestions)
    assert "narrows `Resource` `arn:aws:s3:::*` to the 1 resource(s)" in bodies
    assert '- "arn:aws:s3:::orders-exports/exports/*"' in bodies and "- !GetAtt OrdersTable.Arn" in bodies
    assert "arn:aws:kms:*:444455556666" not in bodies  # nothing to narrow there
    assert len(sp.suggestions) == 3 and len(files) == 1  # one per narrowed statement

    records = scenario() + [record("dynamodb.amazonaws.com", "DescribeTable", None, i=8)]
    sp, files = suggestions_for(tmp_path / "s", catalog, monkeypatch, SPLIT, records)
    (s,) = sp.suggestions
    assert "(split: the actions were used on different resources; `dynamodb:DescribeTable` keep" in s.body
    assert f'- "{SECRET}"' in s.body and '- !Sub "arn:${AWS::Partition}:*:*:*:*"' in s.body


MODULE = """variable "name" {}
variable "account" {}

resource "aws_dynamodb_table" "t" {
  name     = var.name
  hash_key = "id"
}

output "table_arn" {
  value = "arn:aws:dynamodb:us-east-1:${var.account}:table/${var.name}"
}

output "apply_time_arn" {
  value = aws_dynamodb_table.t.arn
}
"""

ROOT = """module "orders" {
  source  = "./modules/table"
  name    = "Orders"
  account = "111122223333"
}

module "others" {
  source  = "./modules/table"
  name    = "Others"
  account = "111122223333"
}

module "counted" {
  count   = 1
  source  = "./modules/table"
  name    = "Orders"
  account = "111122223333"
}

""" + TF[TF.index('resource "aws_iam_role" "ingest"'):TF.index('data "aws_iam_policy_document"')]


def fixed_with_module(tmp_path, catalog, capsys, monkeypatch, module: str) -> str:
    """ROOT's main.tf after `fix --write`, with `module` as ./modules/table."""
    path = scan(tmp_path, "main.tf", ROOT, catalog, exist_ok=True)
    (tmp_path / "infra" / "modules" / "table").mkdir(parents=True)
    (tmp_path / "infra" / "modules" / "table" / "main.tf").write_text(module)
    monkeypatch.chdir(tmp_path)
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    return path.read_text()


def test_terraform_references_the_module_output_that_resolves_to_the_used_arn(tmp_path, catalog, capsys,
                                                                             monkeypatch):
    text = fixed_with_module(tmp_path, catalog, capsys, monkeypatch, MODULE)
    # the table's ARN is what module.orders.table_arn resolves to (preferred to apply_time_arn, the `arn` of the
    # module's table so named); module.others names another table, the counted call has several instances
    assert "Resource = [module.orders.table_arn]" in text
    assert f'Resource = ["{KEY}"]' in text  # no module outputs the key: written as the ARN
    hcl2.loads(text)
    assert not findings(capsys)


def test_terraform_references_the_module_output_that_is_the_arn_of_the_table_so_named(tmp_path, catalog, capsys,
                                                                                      monkeypatch):
    """`value = aws_dynamodb_table.t.arn` is known at apply time only, but the module's table is named by the
    call's input, as the file's own tables are matched by name: module.orders.apply_time_arn is the table."""
    module = MODULE[:MODULE.index('output "table_arn"')] + MODULE[MODULE.index('output "apply_time_arn"'):]
    text = fixed_with_module(tmp_path, catalog, capsys, monkeypatch, module)
    assert "Resource = [module.orders.apply_time_arn]" in text
    assert "module.others" not in text and "module.counted" not in text
    hcl2.loads(text)
    assert not findings(capsys)


def test_a_directorys_module_outputs_are_evaluated_once_for_all_its_files(tmp_path, catalog, capsys, monkeypatch):
    """Two files of one directory narrowed: the module calls are evaluated once, and both files use them."""
    from iamgate.sources.terraform import configuration
    more = """resource "aws_iam_role_policy" "ingest_secrets" {
  role = aws_iam_role.ingest.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "dynamodb:GetItem", Resource = "*" }]
  })
}
"""
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "more.tf").write_text(more)
    evaluated = []
    real = configuration.module_outputs
    monkeypatch.setattr(configuration, "module_outputs", lambda *a: evaluated.append(a[0]) or real(*a))
    text = fixed_with_module(tmp_path, catalog, capsys, monkeypatch, MODULE)
    assert evaluated == [(tmp_path / "infra").resolve()]
    assert "Resource = [module.orders.table_arn]" in text
    assert 'Resource = [module.orders.table_arn] }' in (tmp_path / "infra" / "more.tf").read_text()
    hcl2.loads((tmp_path / "infra" / "more.tf").read_text())


def test_the_narrowed_arn_keeps_the_patterns_variables_and_literal_region(tmp_path, catalog, capsys, monkeypatch):
    """`${AWS::Region}` may be another region than the one the pattern names, and `OrdersTable` is in the
    stack's region: both would grant what the statement did not. The pattern's `${AWS::AccountId}` stays."""
    text = HEAD.replace("      RoleName: orders-ingest", "      RoleName: orders-ingest\n"
                        "      Description: !Sub \"ingest in ${AWS::AccountId}\"") + """              - Effect: Allow
                Action: kms:Decrypt
                Resource: !Sub "arn:aws:kms:us-east-1:${AWS::AccountId}:key/*"
              - Effect: Allow
                Action: dynamodb:GetItem
                Resource: arn:aws:dynamodb:us-east-1:*:table/*
"""
    path = scan(tmp_path, "template.yaml", text, catalog)
    monkeypatch.chdir(tmp_path)
    assert set(findings(capsys)) == {"kms:decrypt", "dynamodb:getitem"}
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    sts = statements(path.read_text())
    assert sts[0]["Resource"] == [{"Fn::Sub": "arn:aws:kms:us-east-1:${AWS::AccountId}:key/"
                                              "1234abcd-12ab-34cd-56ef-1234567890ab"}]
    assert sts[1]["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:dynamodb:us-east-1:${AWS::AccountId}:"
                                              "table/Orders"}]
    assert not findings(capsys)


def test_the_own_account_variable_covers_only_the_principals_account(tmp_path, catalog, capsys, monkeypatch):
    """`${AWS::AccountId}` is the role's account: a key of another account that the role used is not what
    this statement grants, so it is neither reported nor written here."""
    other = "arn:aws:kms:us-east-1:444455556666:key/9999abcd-12ab-34cd-56ef-1234567890ab"
    records = scenario() + [record("kms.amazonaws.com", "Decrypt", {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
                                   [{"accountId": "444455556666", "type": "AWS::KMS::Key", "ARN": other}], i=7)]
    text = HEAD + """              - Effect: Allow
                Action: kms:Decrypt
                Resource: !Sub "arn:${AWS::Partition}:kms:*:${AWS::AccountId}:key/*"
              - Effect: Allow
                Action: kms:Decrypt
                Resource: arn:aws:kms:us-east-1:444455556666:key/*
"""
    path = scan(tmp_path, "template.yaml", text, catalog, records)
    monkeypatch.chdir(tmp_path)
    _, out = run(capsys, "check", "infra", "--baselines", "b", "--format", "json")
    found = sorted((f["resources"], f["message"]) for f in expanded(json.loads(out))["findings"]
                   if f["check"] == "resource-scope")
    assert found == [([KEY], f"kms:Decrypt on arn:aws:kms:*:${{AWS::AccountId}}:key/*, used on 1 key: {KEY}"),
                     ([other], f"kms:Decrypt on arn:aws:kms:us-east-1:444455556666:key/*, used on 1 key: {other}")]
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    sts = statements(path.read_text())
    assert sts[0]["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/"
                                              "1234abcd-12ab-34cd-56ef-1234567890ab"}]
    assert sts[1]["Resource"] == [other]  # the other account's keys: narrowed to the one used there


@pytest.mark.parametrize("body, why", [
    ("                NotAction: iam:*\n", "its Action is a NotAction"),
    ('                Action: [kms:Decrypt, "secretsmanager:Get*"]\n', "its Action has wildcards"),
])
def test_a_split_it_cannot_make_safely_is_left_as_written_and_said(tmp_path, catalog, capsys, monkeypatch, body, why):
    text = HEAD + "              - Effect: Allow\n" + body + '                Resource: "*"\n'
    path = scan(tmp_path, "template.yaml", text, catalog)
    monkeypatch.chdir(tmp_path)
    cli.main(["fix", "infra", "--baselines", "b", "--write"])
    err = capsys.readouterr().err
    assert f"infra/template.yaml:23: Resource not narrowed: its actions need different resources and {why}; " \
           "split the statement by hand" in err
    assert path.read_text() == text


def test_the_summary_counts_only_the_statements_narrowed(tmp_path, catalog, capsys, monkeypatch):
    text = WILD.replace("Resource: arn:aws:s3:::*", "Resource: [arn:aws:s3:::*, arn:aws:s3:::other/*]")
    scan(tmp_path, "template.yaml", text, catalog)
    monkeypatch.chdir(tmp_path)
    cli.main(["fix", "infra", "--baselines", "b"])
    err = capsys.readouterr().err
    assert "Resource not narrowed: it is not one literal \"*\" or wildcard ARN here; narrow it to " \
           "arn:aws:s3:::orders-exports/exports/* by hand" in err
    assert "2 statement(s) granted on `*` or a wildcard ARN narrowed to the resources used; 1 left to narrow by " \
           "hand" in err


def test_a_variable_in_the_resource_part_is_never_read_as_a_wildcard(tmp_path, catalog, capsys, monkeypatch):
    """`${Bucket}` is one bucket per deployment, maybe not the one used: neither reported nor narrowed."""
    text = HEAD.replace("Resources:\n", "Parameters:\n  Bucket: {Type: String}\nResources:\n", 1)
    text += """              - Effect: Allow
                Action: s3:GetObject
                Resource: !Sub "arn:${AWS::Partition}:s3:::${Bucket}/*"
"""
    path = scan(tmp_path, "template.yaml", text, catalog)
    monkeypatch.chdir(tmp_path)
    assert not findings(capsys)
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    assert path.read_text() == text


def test_the_action_posts_the_narrowing_as_a_suggestion_on_the_line_the_pr_changed(tmp_path, catalog):
    """End to end through the GitHub Action: the PR widens a Resource to `arn:aws:s3:::*`; the review comment
    suggests the used prefix instead, in the template's syntax."""
    from fixtures.github.fake_api import FakeGitHub
    from test_action_entrypoint import run_action
    from test_diff import git
    repo = tmp_path / "repo"
    narrow = WILD.replace("Resource: arn:aws:s3:::*", 'Resource: "arn:aws:s3:::orders-exports/exports/*"')
    path = scan(repo, "template.yaml", narrow, catalog)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    path.write_text(WILD)
    git(repo, "commit", "-qam", "pr")
    head = git(repo, "rev-parse", "HEAD").strip()
    with FakeGitHub() as api:
        ran = run_action(tmp_path, repo, api, base_sha=base, head_sha=head, baselines=str(repo / "b"),
                         **{"diff-only": "true"})
    assert ran.code in (0, 1), ran.stderr
    (comment,) = [c for c in api.review_comments if "arn:aws:s3:::" in c["body"]]
    assert comment["path"] == "infra/template.yaml"
    assert comment["line"] == next(i for i, t in enumerate(WILD.splitlines(), 1) if "arn:aws:s3:::*" in t)
    assert ('```suggestion\n                Resource:\n                  - "arn:aws:s3:::orders-exports/exports/*"\n'
            '```') in comment["body"]
    assert "narrows `Resource` `arn:aws:s3:::*` to the 1 resource(s)" in comment["body"]


def test_terraform_heredoc_json_is_narrowed_too(tmp_path, catalog, capsys, monkeypatch):
    encoded = TF[TF.index("  policy = jsonencode({"):TF.index("  })\n}\n\ndata") + 4]
    tf = TF.replace(encoded, '''  policy = <<-EOT
    {
      "Version": "2012-10-17",
      "Statement": [
        {
          "Effect": "Allow",
          "Action": "dynamodb:GetItem",
          "Resource": "*"
        },
        {
          "Effect": "Allow",
          "Action": "kms:Decrypt",
          "Resource": "arn:aws:kms:*:*:key/*"
        }
      ]
    }
  EOT''')
    assert "<<-EOT" in tf
    path = scan(tmp_path, "main.tf", tf, catalog)
    monkeypatch.chdir(tmp_path)
    assert {"dynamodb:getitem", "kms:decrypt"} <= set(findings(capsys))
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    text = path.read_text()
    assert '"Resource": ["${aws_dynamodb_table.orders.arn}"]' in text
    assert ('"Resource": ["arn:aws:kms:us-east-1:${data.aws_caller_identity.current.account_id}:key/'
            '1234abcd-12ab-34cd-56ef-1234567890ab"]') in text
    hcl2.loads(text)
    assert not {"dynamodb:getitem", "kms:decrypt"} & set(findings(capsys))
    # a split is not made inside a heredoc: said, and the text left as it was
    path.write_text(tf.replace('"Action": "kms:Decrypt"', '"Action": ["kms:Decrypt", "dynamodb:GetItem"]'))
    cli.main(["fix", "infra", "--baselines", "b", "--write"])
    assert "its text could not be split here; split it by hand" in capsys.readouterr().err
    assert '"Resource": "arn:aws:kms:*:*:key/*"' in path.read_text()


def test_an_arn_with_a_quote_is_written_escaped(tmp_path, catalog, capsys, monkeypatch):
    """S3 keys are anyone's text: a quote in the used prefix must not end the string it is written in."""
    records = [record("s3.amazonaws.com", "GetObject", {"bucketName": "b", "key": 'we"ird\\\\dir/x.csv'},
                      [{"type": "AWS::S3::Object", "ARN": 'arn:aws:s3:::b/we"ird\\\\dir/x.csv'}], data=True)]
    text = HEAD + """              - Effect: Allow
                Action: s3:GetObject
                Resource: "*"
"""
    path = scan(tmp_path / "y", "template.yaml", text, catalog, records)
    monkeypatch.chdir(tmp_path / "y")
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    assert statements(path.read_text())[0]["Resource"] == ['arn:aws:s3:::b/we"ird\\\\dir/*']
    tf = TF.replace('Action   = "kms:Decrypt"', 'Action   = "s3:GetObject"')
    path = scan(tmp_path / "t", "main.tf", tf, catalog, records)
    monkeypatch.chdir(tmp_path / "t")
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    text = path.read_text()
    assert "Resource = [" + json.dumps('arn:aws:s3:::b/we"ird\\\\dir/*') + "]" in text
    hcl2.loads(text)
