"""Terraform's files as Terraform reads them: JSON syntax, override merging, variable files, OpenTofu;
RE2 replacement as Go does it; the trusted-modules setting as a config change."""
from __future__ import annotations

import json

import pytest

from iamgate.action.config_changes import compare
from iamgate.config import parse
from iamgate.reference.catalog import load_catalog
from iamgate.sources import Workspace
from iamgate.sources.terraform.configuration import TerraformSource
from iamgate.sources.terraform.exact import Inexact, go_replace_all
from iamgate.sources.terraform.json_syntax import read_json_config
from iamgate.sources.loaders import LoadError

ROLE = 'resource "aws_iam_role" "app" {\n  name = "app"\n  assume_role_policy = "{}"\n}\n'
DOC = '''data "aws_iam_policy_document" "d" {
  statement {
    actions   = ["s3:GetObject"]
    resources = ["*"]
  }
  statement {
    actions   = ["s3:PutObject"]
    resources = ["*"]
  }
}
resource "aws_iam_role_policy" "p" {
  role   = aws_iam_role.app.id
  policy = data.aws_iam_policy_document.d.json
}
'''


def scan(tmp_path, files: dict):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    r = TerraformSource().collect(Workspace([str(tmp_path)], base=str(tmp_path)))
    actions = sorted(a for p in r.principals for pol in p.policies for s in pol.statements for a in s.actions)
    return r, actions


def test_a_json_configuration_keeps_its_lines_and_its_templates(tmp_path):
    doc = {"resource": {"aws_iam_role": {"app": {"name": "app", "assume_role_policy": "{}"}},
                        "aws_iam_role_policy": {"p": {"role": "${aws_iam_role.app.id}",
                                                      "policy": "${jsonencode(local.doc)}"}}},
           "locals": {"doc": {"Statement": [{"Effect": "Allow", "Action": "s3:${local.verb}", "Resource": "*"}]},
                      "verb": "GetObject"},
           "//": "a comment"}
    r, actions = scan(tmp_path, {"main.tf.json": json.dumps(doc, indent=2)})
    assert actions == ["s3:GetObject"] and not r.errors
    (role,) = r.principals
    assert (role.location.file, role.location.line) == ("main.tf.json", 4)


@pytest.mark.parametrize("value", ['x" \n  admin = "y', '${"a"}" b = "c', "$${var.x} %{ if true }y%{ endif }"])
def test_a_json_string_never_becomes_more_than_one_argument(value):
    try:
        body = read_json_config(json.dumps({"locals": {"a": value}}), "f.tf.json")
    except LoadError:
        return  # refused as a whole: never read differently
    (block,) = body.blocks
    assert list(block.body.attrs) == ["a"]


def test_a_variable_default_in_json_is_literal_not_a_template(tmp_path):
    doc = {"variable": {"v": {"default": "${jsonencode(1)}"}}, "locals": {"x": "${var.v}"}}
    files = {"main.tf.json": json.dumps(doc), "main.tf": ROLE + 'resource "aws_iam_role_policy" "p" {\n  role = '
             'aws_iam_role.app.id\n  policy = jsonencode({Statement = [{Effect = "Allow", Action = "s3:${local.x}", '
             'Resource = "*"}]})\n}\n'}
    r, actions = scan(tmp_path, files)
    assert actions == ["s3:${jsonencode(1)}"]


def test_an_override_replaces_nested_blocks_of_a_type_and_keeps_the_rest(tmp_path):
    over = 'data "aws_iam_policy_document" "d" {\n  statement {\n    actions = ["sqs:SendMessage"]\n    resources = ["*"]\n  }\n}\n'
    r, actions = scan(tmp_path, {"main.tf": ROLE + DOC, "override.tf": over})
    assert actions == ["sqs:SendMessage"]  # both statements replaced, not merged


def test_a_dynamic_block_in_an_override_replaces_the_static_ones(tmp_path):
    over = ('data "aws_iam_policy_document" "d" {\n  dynamic "statement" {\n    for_each = ["kms:Decrypt", "kms:Encrypt"]\n'
            '    content {\n      actions = [statement.value]\n      resources = ["*"]\n    }\n  }\n}\n')
    r, actions = scan(tmp_path, {"main.tf": ROLE + DOC, "z_override.tf": over})
    assert actions == ["kms:Decrypt", "kms:Encrypt"]


def test_overrides_apply_in_lexical_order_and_locals_one_by_one(tmp_path):
    main = ROLE + ('locals {\n  svc = "s3"\n  verb = "GetObject"\n}\nresource "aws_iam_role_policy" "p" {\n  role = '
                   'aws_iam_role.app.id\n  policy = jsonencode({Statement = [{Effect = "Allow", Action = '
                   '"${local.svc}:${local.verb}", Resource = "*"}]})\n}\n')
    files = {"main.tf": main, "a_override.tf": 'locals {\n  verb = "PutObject"\n}\n',
             "b_override.tf.json": json.dumps({"locals": {"verb": "DeleteObject"}})}
    r, actions = scan(tmp_path, files)
    assert actions == ["s3:DeleteObject"]  # b after a; svc kept


def test_variable_files_in_terraforms_order(tmp_path):
    main = ROLE + ('variable "verb" {}\nresource "aws_iam_role_policy" "p" {\n  role = aws_iam_role.app.id\n  policy = '
                   'jsonencode({Statement = [{Effect = "Allow", Action = "s3:${var.verb}", Resource = "*"}]})\n}\n')
    files = {"main.tf": main, "terraform.tfvars": 'verb = "A"\n', "terraform.tfvars.json": '{"verb": "B"}',
             "a.auto.tfvars.json": '{"verb": "C"}', "b.auto.tfvars": 'verb = "D"\n'}
    assert scan(tmp_path, files)[1] == ["s3:D"]
    (tmp_path / "b.auto.tfvars").unlink()
    assert scan(tmp_path, {})[1] == ["s3:C"]
    (tmp_path / "a.auto.tfvars.json").unlink()
    assert scan(tmp_path, {})[1] == ["s3:B"]


def test_a_tofu_file_shadows_its_tf_twin_and_says_so(tmp_path):
    policy = ROLE.replace('"app"', '"{n}"')
    r, _ = scan(tmp_path, {"main.tf": policy.replace("{n}", "tf"), "main.tofu": policy.replace("{n}", "tofu")})
    assert [p.name for p in r.principals] == ["tofu"]
    [note] = [u for u in r.unresolved if u.grant]
    assert note.location.file == "main.tf" and "OpenTofu reads main.tofu" in note.message


@pytest.mark.parametrize("pattern, text, repl, want", [
    ("^(s3:GetObjec)$", "s3:GetObjec", "$1t*", "*"),  # $1t: the group named 1t, which is empty
    ("^(s3:GetObjec)$", "s3:GetObjec", "${1}t", "s3:GetObject"),
    ("x*", "abxd", "-", "-a-b-d-"),  # no empty match right after a match (Python's re.sub says -a-b--d-)
    ("a$", "a\n", "b", "a\n"),  # $ is the end of the text
    ("(?P<v>Get)", "s3:Get", "$$${v}", "s3:$Get"),
    ("\\d+", "a12b٣", "#", "a#b٣"),  # \d is ASCII in RE2
    ("[^a-c]", "abcd", "", "abc"),
])
def test_regular_expression_replacement_is_gos(pattern, text, repl, want):
    assert go_replace_all(pattern, text, repl) == want


@pytest.mark.parametrize("pattern", ["(?i)get", "\\pL", "[[:alpha:]]", "a++", "(?=x)", "\\Q*\\E"])
def test_regular_expressions_outside_the_reproduced_subset_are_inexact(pattern):
    with pytest.raises(Inexact):
        go_replace_all(pattern, "Get", "x")


def test_trusting_a_remote_module_is_listed_as_a_weakening():
    cat = load_catalog()
    base = parse({"trusted-modules": ["terraform-aws-modules/*"]})
    assert compare(base, parse({"trusted-modules": ["terraform-aws-modules/iam/aws"]}), cat) == []
    [w] = compare(base, parse({"trusted-modules": ["terraform-aws-modules/*", "git::https://evil.example/*"]}), cat)
    assert (w.kind, w.subject) == ("trusted-module-added", "git::https://evil.example/*")


def test_the_exactness_table_names_every_function_the_evaluator_has():
    from iamgate.sources.terraform.exact import EXACTNESS
    from iamgate.sources.terraform.functions import FUNCTIONS
    assert set(FUNCTIONS) <= set(EXACTNESS)
