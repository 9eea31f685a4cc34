"""CloudFormation source: intrinsic functions (both forms), conditions, attachments, locations."""
from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from iamgate.sources import ScanOptions, Workspace, scan


def extract(tmp_path, text: str, name="t.yaml", params=None):
    f = tmp_path / name
    f.write_text(textwrap.dedent(text) if name.endswith((".yaml", ".yml")) else text)
    return scan(Workspace([str(f)], ScanOptions(parameters=params or {}), base=str(tmp_path)))


def role_template(role_props: str, extra: str = "", head: str = "") -> str:
    return textwrap.dedent(head) + "Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n" + \
        textwrap.indent(textwrap.dedent(role_props), "      ") + textwrap.indent(textwrap.dedent(extra), "  ")


def actions_of(result, pid="R"):
    p = next(p for p in result.principals if p.id == pid)
    return sorted(a for pol in p.policies for st in pol.statements for a in st.actions)


def one_policy(action_yaml: str, head: str = "") -> str:
    return role_template(f"""\
        Policies:
          - PolicyName: p
            PolicyDocument:
              Statement:
                - Effect: Allow
                  Action: {action_yaml}
                  Resource: "*"
        """, head=head)


HEAD = """\
Parameters:
  Env: {Type: String, Default: prod}
  Svc: {Type: String, Default: s3}
  List: {Type: CommaDelimitedList, Default: "sqs:SendMessage,sns:Publish"}
  NoDefault: {Type: String}
Mappings:
  M:
    prod: {Act: "kms:Decrypt"}
    dev: {Act: "kms:Encrypt"}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Equals [dev, !Ref Env]
  Both: !And [!Condition IsProd, !Not [!Condition IsDev]]
  Either: !Or [!Condition IsDev, !Equals [!Ref Svc, s3]]
  Unknown: !Equals [!Ref NoDefault, x]
"""


@pytest.mark.parametrize("expr,expected", [
    ("!Sub '${Svc}:GetObject'", ["s3:GetObject"]),
    ("!Sub ['${X}:PutObject', {X: !Ref Svc}]", ["s3:PutObject"]),
    ("!Join [':', [!Ref Svc, ListBucket]]", ["s3:ListBucket"]),
    ("!Select [1, [a:b, 'sqs:DeleteQueue']]", ["sqs:DeleteQueue"]),
    ("!Select [0, !Split [',', 'iam:GetRole,iam:ListRoles']]", ["iam:GetRole"]),
    ("!Split [',', 'iam:GetRole,iam:ListRoles']", ["iam:GetRole", "iam:ListRoles"]),
    ("!FindInMap [M, !Ref Env, Act]", ["kms:Decrypt"]),
    ("!If [IsProd, 'ec2:RunInstances', 'ec2:DescribeInstances']", ["ec2:RunInstances"]),
    ("!If [IsDev, 'ec2:RunInstances', 'ec2:DescribeInstances']", ["ec2:DescribeInstances"]),
    ("!If [Both, 'lambda:InvokeFunction', !Ref AWS::NoValue]", ["lambda:InvokeFunction"]),
    ("[!If [IsDev, 'a:b', !Ref AWS::NoValue], 'sqs:SendMessage']", ["sqs:SendMessage"]),
    ("!If [Either, 'sns:Publish', 'sns:Subscribe']", ["sns:Publish"]),
    ("!Ref List", ["sns:Publish", "sqs:SendMessage"]),
    ("!Sub '${AWS::Partition}:x'", ["aws:x"]),
])
def test_intrinsics_short_form(tmp_path, expr, expected):
    # pinned: a parameter's default does not decide a Condition (issue 19; tests/test_policy_semantics.py)
    r = extract(tmp_path, one_policy(expr, head=HEAD), params={"Env": "prod", "Svc": "s3"})
    assert not r.errors
    assert actions_of(r) == sorted(expected)


def _to_long_form(doc_text: str) -> str:
    """YAML short form -> JSON long form, through our own loader."""
    from iamgate.sources.loaders import load_yaml
    return json.dumps(load_yaml(doc_text), indent=1)


def test_every_intrinsic_gives_the_same_result_in_json_long_form(tmp_path):
    exprs = ["!Sub '${Svc}:GetObject'", "!Join [':', [!Ref Svc, ListBucket]]", "!FindInMap [M, !Ref Env, Act]",
             "!If [Both, 'lambda:InvokeFunction', !Ref AWS::NoValue]", "!Select [0, !Split [',', 'iam:GetRole,x']]"]
    for i, e in enumerate(exprs):
        text = one_policy(e, head=HEAD)
        y = extract(tmp_path, text, name=f"y{i}.yaml")
        long_json = _to_long_form(textwrap.dedent(text))
        assert '"Fn::' in long_json or '"Ref"' in long_json
        j = extract(tmp_path, long_json, name=f"j{i}.json")
        assert actions_of(y) == actions_of(j) and actions_of(y)


def test_getatt_both_forms_and_sub_with_attribute(tmp_path):
    text = role_template("""\
        RoleName: !Sub "app-${AWS::Partition}"
        Policies:
          - PolicyName: p
            PolicyDocument:
              Statement:
                - Effect: Allow
                  Action: s3:GetObject
                  Resource: [!GetAtt B.Arn, !Sub "${B.Arn}/*", {"Fn::GetAtt": [B, Arn]}]
        """, extra="""\
        B:
          Type: AWS::S3::Bucket
        """)
    r = extract(tmp_path, text)
    p = r.principals[0]
    assert p.name == "app-aws"
    assert p.policies[0].statements[0].resources == ("${B.Arn}", "${B.Arn}/*", "${B.Arn}")


def test_role_name_from_parameter_override(tmp_path):
    text = role_template("RoleName: !Sub orders-ingest-${Env}\n", head=HEAD)
    assert extract(tmp_path, text).principals[0].name == "orders-ingest-prod"
    assert extract(tmp_path, text, params={"Env": "dev"}).principals[0].name == "orders-ingest-dev"


def test_unresolved_parts_are_reported_at_their_line_and_the_rest_goes_on(tmp_path):
    text = role_template("""\
        RoleName: !Sub "x-${AWS::Region}"
        Policies:
          - PolicyName: p
            PolicyDocument:
              Statement:
                - Effect: Allow
                  Action: !ImportValue shared-actions
                  Resource: "*"
                - Effect: Allow
                  Action: [!Ref NoDefault, "sqs:SendMessage", !If [Unknown, "a:b", "c:d"]]
                  Resource: "*"
                - Effect: Allow
                  Action: !Fn::Bogus [1]
                  Resource: "*"
        """, head=HEAD)
    r = extract(tmp_path, text)
    assert not r.errors
    assert actions_of(r) == ["a:b", "c:d", "sqs:SendMessage"]  # an undecided Fn::If: the union of its branches
    msgs = [(u.location.line, u.message) for u in r.unresolved]
    assert r.principals[0].name is None and r.principals[0].name_pattern == "x-*"
    assert any("AWS::Region" in m for _, m in msgs)
    import_line = 1 + next(i for i, t in enumerate(text.splitlines()) if "!ImportValue" in t)
    assert any("ImportValue shared-actions" in m and line == import_line for line, m in msgs)
    assert any("parameter NoDefault has no value" in m for _, m in msgs)
    assert any("condition Unknown cannot be decided statically" in m and "NoDefault" in m for _, m in msgs)
    assert any("unknown intrinsic function Fn::Fn::Bogus" in m or "unknown intrinsic" in m for _, m in msgs)
    assert all(u.location.file == "t.yaml" for u in r.unresolved)


def test_resource_condition_false_is_skipped(tmp_path):
    text = HEAD + textwrap.dedent("""\
        Resources:
          DevRole:
            Type: AWS::IAM::Role
            Condition: IsDev
            Properties: {}
          ProdRole:
            Type: AWS::IAM::Role
            Condition: IsProd
            Properties: {}
        """)
    assert [p.id for p in extract(tmp_path, text, params={"Env": "prod"}).principals] == ["ProdRole"]
    # unpinned, the default decides nothing: both roles may be deployed, each with a note
    r = extract(tmp_path, text)
    assert [p.id for p in r.principals] == ["DevRole", "ProdRole"]
    assert sum("included as if it were true" in u.message for u in r.unresolved) == 2


def test_policy_and_managed_policy_attachments(tmp_path):
    text = textwrap.dedent("""\
        Resources:
          Role:
            Type: AWS::IAM::Role
            Properties:
              RoleName: app
              ManagedPolicyArns: [!Ref Managed]
          User:
            Type: AWS::IAM::User
            Properties:
              Groups: [!Ref Group]
          Group:
            Type: AWS::IAM::Group
            Properties:
              Policies:
                - PolicyName: g
                  PolicyDocument: {Statement: [{Effect: Allow, Action: "iam:GetUser", Resource: "*"}]}
          Inline:
            Type: AWS::IAM::Policy
            Properties:
              PolicyName: inline
              Roles: [!Ref Role, existing-role]
              Users: [!Ref User]
              PolicyDocument: {Statement: [{Effect: Allow, Action: "sqs:SendMessage", Resource: "*"}]}
          Managed:
            Type: AWS::IAM::ManagedPolicy
            Properties:
              Groups: [!Ref Group]
              PolicyDocument: {Statement: [{Effect: Allow, Action: "kms:Decrypt", Resource: "*"}]}
          Lonely:
            Type: AWS::IAM::ManagedPolicy
            Properties:
              PolicyDocument: {Statement: [{Effect: Allow, Action: "s3:GetObject", Resource: "*"}]}
          RolePolicy:
            Type: AWS::IAM::RolePolicy
            Properties:
              RoleName: !Ref Role
              PolicyName: rp
              PolicyDocument: {Statement: [{Effect: Allow, Action: "sns:Publish", Resource: "*"}]}
        """)
    r = extract(tmp_path, text)
    assert not r.errors
    by_id = {p.id: p for p in r.principals}
    assert actions_of(r, "Role") == ["kms:Decrypt", "sns:Publish", "sqs:SendMessage"]
    assert actions_of(r, "Group") == ["iam:GetUser", "kms:Decrypt"]
    assert actions_of(r, "User") == ["iam:GetUser", "kms:Decrypt", "sqs:SendMessage"]  # via its group
    assert by_id["role/existing-role"].name == "existing-role" and actions_of(r, "role/existing-role") == [
        "sqs:SendMessage"]
    assert by_id["Lonely"].kind == "policy"
    assert by_id["Role"].kind == "role" and by_id["User"].kind == "user" and by_id["Group"].kind == "group"


def test_aws_managed_policy_from_cache_or_bundle_or_unresolved(tmp_path):
    from iamgate.reference.managed_policies import ManagedPolicyCache
    arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    text = role_template(f"ManagedPolicyArns: ['{arn}']\n")
    r = extract(tmp_path, text)  # no cache: iamgate's bundled copy
    assert not r.unresolved
    assert r.principals[0].policies[0].managed_arn == arn
    assert r.principals[0].policies[0].managed_origin == "bundle"
    assert actions_of(r) == ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    customer = "arn:aws:iam::111122223333:policy/app"
    r0 = extract(tmp_path, role_template(f"ManagedPolicyArns: ['{customer}']\n"))
    assert any("not in the managed-policy cache" in u.message for u in r0.unresolved)
    assert r0.principals[0].policies[0].managed_arn == customer
    cache = tmp_path / "cache"
    ManagedPolicyCache(cache).put(arn, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:PutLogEvents"], "Resource": "*"}]}, "v1")
    f = tmp_path / "t2.yaml"
    f.write_text(text)
    r2 = scan(Workspace([str(f)], ScanOptions(managed_policy_dir=str(cache)), base=str(tmp_path)))
    assert not r2.unresolved
    assert actions_of(r2) == ["logs:CreateLogGroup", "logs:PutLogEvents"]  # the cache wins over the bundle
    assert r2.principals[0].policies[0].managed_origin == "cache"


def test_statement_lines_and_policy_lines(tmp_path):
    text = role_template("""\
        Policies:
          - PolicyName: p
            PolicyDocument:
              Version: 2012-10-17
              Statement:
                - Sid: First
                  Effect: Allow
                  Action: s3:GetObject
                  Resource: "*"
                - Sid: Second
                  Effect: Deny
                  NotAction: [s3:*]
                  NotResource: "arn:aws:s3:::b/*"
                  Condition: {Bool: {aws:SecureTransport: false}}
        """)
    r = extract(tmp_path, text)
    st1, st2 = r.principals[0].policies[0].statements
    assert (st1.sid, st1.location.line) == ("First", 10)
    assert (st2.sid, st2.location.line, st2.effect) == ("Second", 14, "Deny")
    assert st2.not_actions == ("s3:*",) and st2.not_resources == ("arn:aws:s3:::b/*",)
    assert st2.condition == {"Bool": {"aws:SecureTransport": False}}
    assert r.principals[0].location.line == 2


def test_json_template_lines(tmp_path):
    doc = {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [
        {"PolicyName": "p", "PolicyDocument": {"Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}}]}}}}
    text = json.dumps(doc, indent=2)
    r = extract(tmp_path, text, name="t.json")
    line = r.principals[0].policies[0].statements[0].location.line
    assert text.splitlines()[line - 1].strip() == "{"
    assert '"Effect"' in text.splitlines()[line]


def test_foreach_language_extension(tmp_path):
    text = textwrap.dedent("""\
        Transform: AWS::LanguageExtensions
        Resources:
          Fn::ForEach::Roles:
            - Name
            - [reader, writer]
            - Role${Name}:
                Type: AWS::IAM::Role
                Properties:
                  RoleName: !Sub app-${Name}
                  Policies:
                    - PolicyName: p
                      PolicyDocument:
                        Statement: [{Effect: Allow, Action: !Sub "s3:Get${Name}", Resource: "*"}]
        """)
    r = extract(tmp_path, text)
    assert sorted(p.name for p in r.principals) == ["app-reader", "app-writer"]


def test_twin_yaml_and_json_templates_extract_identically(tmp_path):
    yaml_text = (tmp_path / "src.yaml")
    yaml_text.write_text(textwrap.dedent(one_policy("!If [IsProd, 'ec2:RunInstances', 'x:y']", head=HEAD)))
    from iamgate.sources.loaders import load_yaml
    (tmp_path / "src.json").write_text(json.dumps(load_yaml(yaml_text.read_text()), indent=2))
    r = scan(Workspace([str(tmp_path)], base=str(tmp_path)))
    a, b = sorted(r.principals, key=lambda p: p.location.file)
    strip = lambda p: [(s.effect, s.actions, s.resources) for pol in p.policies for s in pol.statements]  # noqa
    assert strip(a) == strip(b) and strip(a)


def test_yaml_loader_keeps_dates_and_tags_safely(tmp_path):
    from iamgate.sources.loaders import load_yaml
    d = load_yaml("Version: 2012-10-17\nX: !GetAtt A.B.C\nY: !Base64 {Fn::Sub: x}\n")
    assert d["Version"] == "2012-10-17"
    assert d["X"] == {"Fn::GetAtt": ["A", "B.C"]}
    with pytest.raises(Exception):
        yaml.load("!!python/object/apply:os.system ['true']", Loader=__import__("iamgate.sources.loaders").loaders.CfnYamlLoader)


def test_numeric_logical_id_and_role_name(tmp_path):
    r = extract(tmp_path, "Resources:\n  123:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: 12345\n")
    assert not r.errors
    assert [(p.id, p.name, p.location.line) for p in r.principals] == [("123", "12345", 2)]


def test_a_policy_naming_its_role_by_the_name_cut_from_the_roles_arn(tmp_path):
    # CDK's Role.fromRoleArn(role.roleArn): Select 1 (Split "/" (Select 5 (Split ":" Role.Arn)))
    name_from_arn = ('{"Fn::Select": [1, {"Fn::Split": ["/", {"Fn::Select": [5, {"Fn::Split": [":", '
                     '{"Fn::GetAtt": ["%s", "Arn"]}]}]}]}]}')
    text = textwrap.dedent("""\
        Resources:
          Generated:
            Type: AWS::IAM::Role
          Named:
            Type: AWS::IAM::Role
            Properties: {RoleName: jobs, Path: /team/}
          Attached:
            Type: AWS::IAM::Policy
            Properties:
              PolicyName: p
              Roles: [%s, %s]
              PolicyDocument: {Statement: [{Effect: Allow, Action: "glue:GetJob", Resource: "*"}]}
        """) % (name_from_arn % "Generated", name_from_arn % "Named")
    r = extract(tmp_path, text)
    assert actions_of(r, "Generated") == ["glue:GetJob"]
    assert not r.unresolved
    # with a path, the second part is the path's first folder, as in CloudFormation: a role of that name
    assert actions_of(r, "role/team") == ["glue:GetJob"] and actions_of(r, "Named") == []
