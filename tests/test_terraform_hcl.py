"""The Terraform HCL source, construct by construct, on small fixtures in tests/fixtures/terraform."""
from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, run_cli, write_json
from iamgate.reference.managed_policies import ManagedPolicyCache
from iamgate.sources import ScanOptions, Workspace, scan
from iamgate.sources.terraform.configuration import TerraformSource
from iamgate.formats.json import expanded

TF = FIXTURES / "terraform"


def collect(*parts: str, managed_dir=None, paths=None):
    options = ScanOptions(managed_policy_dir=str(managed_dir) if managed_dir else None)
    return TerraformSource().collect(Workspace(paths or [str(TF.joinpath(*parts))], options, base=str(TF)))


def principals(result) -> dict:
    return {p.id: p for p in result.principals}


def policy(p, name):
    matches = [pol for pol in p.policies if pol.name == name]
    assert len(matches) == 1, [pol.name for pol in p.policies]
    return matches[0]


def actions(pol) -> list:
    return [a for s in pol.statements for a in s.actions]


def notes(result) -> list[str]:
    return [u.message for u in result.unresolved]


# -- values: jsonencode, locals, var defaults, interpolation, references ------------

def test_jsonencode_inline_policy_with_locals_and_references():
    r = collect("basic")
    ingest = principals(r)["aws_iam_role.ingest"]
    assert (ingest.kind, ingest.name, ingest.path, ingest.source) == ("role", "orders-prod-ingest", "/service/",
                                                                      "terraform")
    assert str(ingest.location) == "basic/main.tf:19"
    read = policy(ingest, "read-bucket")
    st = read.statements[0]
    assert st.actions == ("s3:GetObject", "s3:ListBucket")
    # an apply-time ARN is kept as text, never guessed and never dropped
    assert st.resources == ("${aws_s3_bucket.data.arn}", "${aws_s3_bucket.data.arn}/*")
    assert str(st.location) == "basic/main.tf:28"
    assert not r.errors


def test_var_default_list_and_interpolated_resource():
    r = collect("basic")
    tables = policy(principals(r)["aws_iam_role.ingest"], "orders-prod-tables")
    assert actions(tables) == ["dynamodb:GetItem", "dynamodb:PutItem"]
    assert tables.statements[0].resources == ("arn:aws:dynamodb:*:*:table/orders-prod",)


def test_variable_without_value_is_unresolved_at_its_line():
    r = collect("basic")
    extra = policy(principals(r)["aws_iam_role.ingest"], "extra")
    assert actions(extra) == ["sqs:SendMessage"]  # the known action stays
    msgs = [u for u in r.unresolved if "var.extra_action" in u.message]
    assert len(msgs) == 1
    assert msgs[0].location.line == 62 and msgs[0].principal_id == "aws_iam_role.ingest"


def test_managed_policy_arns_literal_and_reference():
    r = collect("basic")
    ingest = principals(r)["aws_iam_role.ingest"]
    # aws_iam_policy.tables.arn links the policy resource; the AWS managed one is not in the cache, so it
    # is read from iamgate's bundle of AWS managed policies
    assert "orders-prod-tables" in [p.name for p in ingest.policies]
    ro = policy(ingest, "ReadOnlyAccess")
    assert ro.managed_arn == "arn:aws:iam::aws:policy/ReadOnlyAccess" and ro.managed_origin == "bundle"
    assert "s3:Get*" in {a for st in ro.statements for a in st.actions}
    assert not any("ReadOnlyAccess" in m for m in notes(r))


def test_managed_policy_from_the_cache(tmp_path):
    cache = ManagedPolicyCache(tmp_path)
    cache.put("arn:aws:iam::aws:policy/AWSLambdaExecute", {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]})
    r = collect("basic", managed_dir=tmp_path)
    generated = principals(r)["aws_iam_role.generated"]
    assert actions(policy(generated, "AWSLambdaExecute")) == ["logs:*"]
    assert not any("AWSLambdaExecute" in m for m in notes(r))


def test_name_prefix_is_reported_as_a_prefix():
    generated = principals(collect("basic"))["aws_iam_role.generated"]
    assert generated.name == "batch-" and generated.name_is_prefix


def test_policy_attached_to_nothing_is_a_policy_principal():
    orphan = principals(collect("basic"))["aws_iam_policy.orphan"]
    assert orphan.kind == "policy" and orphan.name == "orphan"
    assert actions(policy(orphan, "orphan")) == ["sns:Publish"]
    assert str(orphan.policies[0].statements[0].location) == "basic/main.tf:78"


# -- aws_iam_policy_document -------------------------------------------------------

def test_policy_document_source_override_dynamic_and_not_elements():
    r = collect("documents")
    app = policy(principals(r)["aws_iam_role.app"], "app")
    by_sid = {s.sid: s for s in app.statements}
    # source document first, then this document's statements, overrides replace by sid
    assert [s.sid for s in app.statements] == ["Logs", "Kms", "NotS3", "DenyDelete", "SendInvoices", "SendOrders",
                                               None, None, None]
    assert by_sid["Kms"].actions == ("kms:Decrypt", "kms:GenerateDataKey")
    assert str(by_sid["Kms"].location) == "documents/main.tf:22"  # the overriding statement's line
    not_s3 = by_sid["NotS3"]
    assert not_s3.not_actions == ("s3:*",) and not_s3.actions == ()
    assert not_s3.not_resources == ("arn:aws:s3:::secret/*",)
    assert dict(not_s3.condition) == {"StringEquals": {"aws:RequestedRegion": ["eu-west-1"]}}
    assert by_sid["DenyDelete"].effect == "Deny"
    # dynamic "statement" with a literal map and an iterator, and with a literal list
    assert by_sid["SendOrders"].resources == ("arn:aws:sqs:eu-west-1:111122223333:orders",)
    unnamed = [s.actions for s in app.statements if s.sid is None]
    assert unnamed == [("sns:Publish",), ("sns:Subscribe",), ("xray:PutTraceSegments",)]
    assert not r.errors and not r.unresolved


def test_dynamic_statement_with_apply_time_for_each_is_unresolved(tmp_path):
    (tmp_path / "main.tf").write_text('''
resource "aws_sqs_queue" "q" {}
data "aws_iam_policy_document" "d" {
  dynamic "statement" {
    for_each = aws_sqs_queue.q.tags_all
    content {
      actions   = ["sqs:SendMessage"]
      resources = [statement.value]
    }
  }
  statement {
    actions   = ["sqs:ListQueues"]
    resources = ["*"]
  }
}
resource "aws_iam_policy" "p" {
  name   = "p"
  policy = data.aws_iam_policy_document.d.json
}
''')
    r = collect(paths=[str(tmp_path)])
    pol = principals(r)["aws_iam_policy.p"].policies[0]
    assert actions(pol) == ["sqs:ListQueues"]
    assert any("dynamic statement for_each" in m and "tags_all" in m for m in notes(r))


def test_tfvars_and_builtin_functions(tmp_path):
    (tmp_path / "main.tf").write_text('''
variable "env" {
  default = "dev"
}
variable "services" {
  default = {}
}
locals {
  base  = { s3 = ["s3:GetObject"] }
  all   = merge(local.base, var.services)
  acts  = sort(distinct(flatten([for svc, a in local.all : a])))
  role  = format("%s-%s", lookup({ prod = "p" }, var.env, "x"), upper(var.env))
}
resource "aws_iam_role" "r" {
  name = try(local.missing.name, local.role)
}
resource "aws_iam_role_policy" "r" {
  role   = aws_iam_role.r.name
  policy = jsonencode({ Version = "2012-10-17", Statement = [{ Effect = "Allow", Action = local.acts, Resource = "*" }] })
}
''')
    (tmp_path / "terraform.tfvars").write_text('env = "prod"\nservices = { sqs = ["sqs:SendMessage", "s3:GetObject"] }\n')
    r = collect(paths=[str(tmp_path)])
    role = principals(r)["aws_iam_role.r"]
    assert role.name == "p-PROD"
    assert actions(role.policies[0]) == ["s3:GetObject", "sqs:SendMessage"]
    assert not r.errors and not r.unresolved


def test_folder_of_unrelated_files_is_read_file_by_file(tmp_path):
    for name in ("a.tf", "b.tf"):
        (tmp_path / name).write_text('resource "aws_iam_user" "u" {\n  name = "%s"\n}\n' % name[0])
    r = collect(paths=[str(tmp_path)])
    assert sorted((p.id, p.name) for p in r.principals) == [("aws_iam_user.u", "a"), ("aws_iam_user.u", "b")]
    assert not r.errors
    assert any("declared in more than one file" in m for m in notes(r))


# -- heredocs -----------------------------------------------------------------------

def test_heredoc_json_with_interpolation_and_trailing_spaces_after_marker():
    text = (TF / "heredoc" / "main.tf").read_text()
    assert "POLICY  \n" in text  # the fixture keeps Terraform's accepted trailing blanks
    r = collect("heredoc")
    assert not r.errors
    worker = principals(r)["aws_iam_role.worker"]
    pol = policy(worker, "worker")
    assert [s.actions for s in pol.statements] == [("sqs:ReceiveMessage", "sqs:DeleteMessage"), ("s3:PutObject",)]
    assert pol.statements[0].resources == ("arn:aws:sqs:*:*:jobs",)
    assert pol.statements[1].resources == ("${aws_s3_bucket.out.arn}/*",)
    assert [s.location.line for s in pol.statements] == [16, 21]


def test_indented_heredoc():
    pol = policy(principals(collect("heredoc"))["aws_iam_role.worker"], "trimmed")
    assert actions(pol) == ["cloudwatch:PutMetricData"]


def test_heredoc_with_apply_time_action_is_unresolved(tmp_path):
    (tmp_path / "main.tf").write_text('''resource "aws_iam_user" "u" {
  name = "u"
}
resource "aws_iam_user_policy" "p" {
  user   = aws_iam_user.u.name
  policy = <<EOF
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Action": ${jsonencode(aws_ssm_parameter.acts.value)}, "Resource": "*"},
               {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}
EOF
}
resource "aws_ssm_parameter" "acts" {
  name = "acts"
}
''')
    r = collect(paths=[str(tmp_path)])
    pol = principals(r)["aws_iam_user.u"].policies[0]
    assert actions(pol) == ["s3:ListAllMyBuckets"]
    assert any("Action cannot be resolved" in m and "aws_ssm_parameter.acts.value" in m for m in notes(r))
    assert not r.errors


# -- files ----------------------------------------------------------------------------

def test_file_and_templatefile_inside_the_repository():
    r = collect("files")
    role = principals(r)["aws_iam_role.files"]
    from_file = policy(role, "from-file")
    assert actions(from_file) == ["s3:GetObject"]
    assert str(from_file.statements[0].location) == "files/policies/read.json:4"
    tpl = policy(role, "from-template")
    assert [s.resources for s in tpl.statements] == [("arn:aws:dynamodb:*:*:table/orders",),
                                                     ("${aws_s3_bucket.b.arn}/*",)]
    assert str(tpl.statements[0].location) == "files/policies/write.json.tpl:4"


def test_files_read_by_file_are_not_read_again_as_plain_policies():
    result = scan(Workspace([str(TF / "files")], base=str(TF)))
    assert {p.source for p in result.principals} == {"terraform"}


def test_file_outside_the_repository_is_not_read():
    r = collect("files")
    outside = policy(principals(r)["aws_iam_role.files"], "outside")
    assert outside.statements == ()
    assert any("/etc/hostname is outside the scanned repository" in m for m in notes(r))


# -- modules ------------------------------------------------------------------------------

def test_local_modules_with_inputs_count_and_outputs():
    r = collect("modules")
    ps = principals(r)
    assert set(ps) == {"module.api.aws_iam_role.this", "module.jobs[0].aws_iam_role.this",
                       "module.jobs[1].aws_iam_role.this"}
    api = ps["module.api.aws_iam_role.this"]
    assert api.name == "api-role"
    assert str(api.location) == "modules/modules/worker/main.tf:10"
    assert actions(policy(api, "api-policy")) == ["dynamodb:Query"]
    # a nested module given the role's name through a variable
    assert actions(policy(api, "logs")) == ["logs:PutLogEvents"]
    # an attachment in the root that names the role through the module's output
    assert policy(api, "AWSXrayWriteOnlyAccess").managed_arn == "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
    assert ps["module.jobs[1].aws_iam_role.this"].name == "jobs-1-role"


def test_remote_module_is_unresolved_at_its_block():
    r = collect("modules")
    remote = [u for u in r.unresolved if "module vpc" in u.message]
    assert len(remote) == 1 and str(remote[0].location) == "modules/main.tf:14"
    assert "not downloaded here" in remote[0].message and remote[0].grant  # it could grant anything


def test_scanning_a_module_folder_alone_reads_it_as_a_root():
    r = collect("modules", "modules", "worker")
    ps = principals(r)
    assert set(ps) == {"aws_iam_role.this"}
    assert ps["aws_iam_role.this"].name is None  # var.name has no value
    assert any("var.name has no default" in m for m in notes(r))


def test_optional_object_attributes_get_their_defaults():
    r = collect("typed")
    ps = principals(r)
    assert set(ps) == {'module.svc.aws_iam_role.this["reader"]'}  # writer sets create = false
    reader = ps['module.svc.aws_iam_role.this["reader"]']
    assert reader.path == "/svc/"
    assert actions(reader.policies[0]) == ["s3:GetObject"]


# -- count / for_each -----------------------------------------------------------------

def test_count_and_for_each_instances():
    r = collect("counts")
    ps = principals(r)
    assert {"aws_iam_role.numbered[0]", "aws_iam_role.numbered[1]", 'aws_iam_role.team["blue"]',
            'aws_iam_role.team["red"]'} <= set(ps)
    assert "aws_iam_role.disabled" not in " ".join(ps)
    assert ps["aws_iam_role.numbered[1]"].name == "numbered-1"
    assert [p.name for p in ps["aws_iam_role.numbered[1]"].policies] == ["numbered-1"]
    assert actions(ps['aws_iam_role.team["red"]'].policies[0]) == ["s3:GetObject"]
    assert actions(ps['aws_iam_role.team["blue"]'].policies[0]) == ["sqs:SendMessage"]


def test_apply_time_count_is_unresolved_not_guessed():
    r = collect("counts")
    later = [u for u in r.unresolved if u.principal_id == "aws_iam_role.later"]
    assert len(later) == 1 and later[0].location.line == 43 and "count cannot be resolved" in later[0].message


# -- users, groups, attachments ------------------------------------------------------------

def test_users_groups_memberships_and_policy_attachment():
    r = collect("users")
    ps = principals(r)
    alice, bob, devs = ps["aws_iam_user.alice"], ps["aws_iam_user.bob"], ps["aws_iam_group.devs"]
    assert (alice.kind, alice.path, devs.kind) == ("user", "/people/", "group")
    assert {p.name for p in devs.policies} == {"devs", "shared", "AWSCodeCommitReadOnly"}
    # alice gets her own policy and, through membership, the group's
    assert {p.name for p in alice.policies} == {"alice", "devs", "shared", "AWSCodeCommitReadOnly"}
    assert {p.name for p in bob.policies} == {"shared", "IAMUserChangePassword"}
    # a role named by a literal that the code does not define is still a principal
    assert actions(policy(ps["role/existing-role"], "shared")) == ["cloudwatch:GetMetricData"]


def test_role_policies_exclusive_removes_unlisted_inline_policies():
    r = collect("exclusive")
    locked = principals(r)["aws_iam_role.locked"]
    assert [p.name for p in locked.policies] == ["kept"]
    assert any("removes inline policy dropped" in m for m in notes(r))
    assert any("made-elsewhere" in m and "cannot be resolved" in m for m in notes(r))


def test_role_policy_attachments_exclusive(tmp_path):
    (tmp_path / "main.tf").write_text('''
resource "aws_iam_role" "r" {
  name = "r"
}
resource "aws_iam_role_policy_attachment" "old" {
  role       = aws_iam_role.r.name
  policy_arn = "arn:aws:iam::aws:policy/AdministratorAccess"
}
resource "aws_iam_role_policy_attachments_exclusive" "r" {
  role_name   = aws_iam_role.r.name
  policy_arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
}
''')
    r = collect(paths=[str(tmp_path)])
    role = principals(r)["aws_iam_role.r"]
    assert [p.managed_arn for p in role.policies] == ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    assert any("detaches arn:aws:iam::aws:policy/AdministratorAccess" in m for m in notes(r))


# -- bad input ---------------------------------------------------------------------------------

def test_unparsable_file_is_a_located_error_and_the_scan_goes_on():
    r = collect("broken")
    assert [(e.file, e.line) for e in r.errors] == [("broken/bad.tf", 5)]
    assert "not closed" in r.errors[0].message
    assert "aws_iam_user.fine" in principals(r)


def test_not_json_policy_is_a_located_error(tmp_path):
    (tmp_path / "main.tf").write_text('''resource "aws_iam_policy" "p" {
  name   = "p"
  policy = <<EOF
{"Version": "2012-10-17", "Statement": [
EOF
}
''')
    r = collect(paths=[str(tmp_path)])
    assert len(r.errors) == 1 and "not valid JSON" in r.errors[0].message
    assert r.errors[0].line == 5  # where the document ends too early


def test_reference_cycle_does_not_hang(tmp_path):
    (tmp_path / "main.tf").write_text('''locals {
  a = local.b
  b = local.a
}
resource "aws_iam_role" "r" {
  name = local.a
}
''')
    r = collect(paths=[str(tmp_path)])
    assert principals(r)["aws_iam_role.r"].name is None
    assert any("cycle" in m for m in notes(r))


def test_tf_files_are_claimed_so_no_other_source_reads_them():
    ws = Workspace([str(TF / "basic")], base=str(TF))
    scan(ws, only=["terraform"])
    assert ws.unclaimed({".tf"}) == []


# -- end to end ------------------------------------------------------------------------------

E2E_TF = """
resource "aws_iam_role" "worker" {
  name = "worker"
}

resource "aws_iam_role_policy" "worker" {
  name = "worker"
  role = aws_iam_role.worker.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = ["ec2:DescribeInstances", "ec2:TerminateInstances"], Resource = "*" }]
  })
}
"""


@pytest.mark.parametrize("fail_on, code", [("medium", 1), ("never", 0)])
def test_check_end_to_end_through_the_cli(tmp_path, fail_on, code):
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "main.tf").write_text(E2E_TF)
    baselines = tmp_path / "baselines"
    write_json(baselines / "worker.json", {
        "schema": "iamgate.baseline/v1",
        "principal_arn": "arn:aws:iam::111122223333:role/worker",
        "window": {"start": "2026-08-24T00:00:00Z", "end": "2026-11-22T00:00:00Z"},
        "sources": [{"kind": "cloudtrail", "events": 10, "files": 1}],
        "used": {"ec2:describeinstances": {"count": 5, "signals": ["cloudtrail"]}},
    })
    proc = run_cli("check", "infra", "--baselines", str(baselines), "--format", "json", "--fail-on", fail_on,
                   cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    report = expanded(json.loads(proc.stdout))
    worker = next(p for p in report["principals"] if p["id"] == "aws_iam_role.worker")
    assert worker["source"] == "terraform" and worker["file"] == "infra/main.tf"
    assert worker["actions"]["used"] == ["ec2:describeinstances"]
    assert worker["actions"]["unused"] == ["ec2:terminateinstances"]
    unused = [f for f in report["findings"] if f["check"] == "unused-actions"]
    assert [(f["principal"], f["actions"], f["line"]) for f in unused] == [
        ("aws_iam_role.worker", ["ec2:terminateinstances"], 11)]


def test_partly_unknown_name_keeps_its_known_text_as_a_pattern(tmp_path):
    (tmp_path / "main.tf").write_text(
        'locals {\n  prefix = "${var.config.prefix}orders"\n}\n'
        'resource "aws_iam_role" "worker" {\n  name = "${local.prefix}-worker"\n  assume_role_policy = "{}"\n}\n')
    result = scan(Workspace([str(tmp_path)], base=str(tmp_path)))
    (role,) = result.principals
    assert role.name is None and role.name_pattern == "*orders-worker"
    assert any("undeclared variable var.config" in u.message for u in result.unresolved)


def test_a_regular_expression_that_backtracks_without_end_does_not_hang_the_scan(tmp_path):
    # Terraform's regular expressions (RE2) run in linear time; a backtracking engine takes 2^n steps on these
    (tmp_path / "main.tf").write_text('''
resource "aws_iam_role" "nested" {
  name = replace("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", "/(a+)+$/", "x")
}
resource "aws_iam_role" "alternatives" {
  name = replace("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", "/(a|aa)+$/", "x")
}
resource "aws_iam_role" "ok" {
  name = replace("app_data_role", "/_(\\\\w+)_/", "-$1-")
}
''')
    r = collect(paths=[str(tmp_path)])
    by_id = principals(r)
    assert by_id["aws_iam_role.ok"].name == "app-data-role"
    assert by_id["aws_iam_role.nested"].name == "a" * 40 + "!"  # no match: unchanged, as Terraform
    (note,) = [u for u in r.unresolved if u.principal_id == "aws_iam_role.alternatives"]
    assert "replace(): the regular expression /(a|aa)+$/ takes too long" in note.message


def test_counts_and_ranges_beyond_any_real_configuration_are_errors_not_a_hang(tmp_path):
    (tmp_path / "main.tf").write_text('''
resource "aws_iam_role" "many" {
  count = 100000000
  name  = "r-${count.index}"
}
resource "aws_iam_role" "ranged" {
  for_each = toset([for i in range(100000000) : tostring(i)])
  name     = "q-${each.key}"
}
''')
    r = collect(paths=[str(tmp_path)])
    assert [e.message for e in r.errors] == [
        "count of 100000000 is more than iamgate reads (10000); its instances are not read"]
    # for_each over a range Terraform itself refuses: one instance, noted, as for any unknown for_each
    assert [p.id for p in r.principals] == ["aws_iam_role.ranged"]
    assert any("for_each cannot be resolved" in m and "range() too long" in m for m in notes(r)), notes(r)
