"""Issue 19, the Terraform half: grants that walked past the gate (a role whose baseline saw only
s3:GetObject), each through `iamgate check`. Every case failed (exit 0) on the code before; each
has a control, a narrow grant in the same shape, that still passes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import cli_in_process, write_json

ROLE = '''
variable "actions" {
  type    = list(string)
  default = ["s3:GetObject"]
}
resource "aws_iam_role" "app" {
  name               = "app"
  assume_role_policy = "{}"
}
resource "aws_iam_role_policy" "p" {
  role = aws_iam_role.app.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = ACTION, Resource = "*" }]
  })
}
'''


def gate(tmp_path, files: dict, action: str = "var.actions", *args):
    (tmp_path / "infra").mkdir(exist_ok=True)
    (tmp_path / "infra" / "main.tf").write_text(ROLE.replace("ACTION", action))
    for name, text in files.items():
        path = tmp_path / "infra" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    write_json(tmp_path / "baselines" / "app.json", {
        "schema": "iamgate.baseline/v1", "principal_arn": "arn:aws:iam::111122223333:role/app",
        "window": {"start": "2026-08-24T00:00:00Z", "end": "2026-11-22T00:00:00Z"},
        "sources": [{"kind": "cloudtrail", "events": 10, "files": 1}],
        "used": {"s3:getobject": {"count": 5, "signals": ["cloudtrail"]}}})
    r = cli_in_process("check", "infra", "--baselines", "baselines", "--format", "json", *args, cwd=tmp_path)
    report = json.loads(r.stdout) if r.stdout else {}
    return r.returncode, report


def checks(report) -> set:
    return {f["check"] for f in report.get("findings", []) if f["severity"] in ("high", "critical")}


# -- 1. files Terraform reads ----------------------------------------------------------------------

ADMIN_JSON = json.dumps({"resource": {"aws_iam_role_policy": {"q": {
    "role": "${aws_iam_role.app.id}",
    "policy": '${jsonencode({Version = "2012-10-17", Statement = [{Effect = "Allow", Action = "*", Resource = "*"}]})}'}}}})
ADMIN_TF = ('resource "aws_iam_role_policy" "q" {\n  role = aws_iam_role.app.id\n  policy = jsonencode({Statement = '
            '[{Effect = "Allow", Action = "*", Resource = "*"}]})\n}\n')


@pytest.mark.parametrize("files", [
    {"terraform.tfvars.json": '{"actions": ["*"]}'},  # the reproduction
    {"prod.auto.tfvars.json": '{"actions": ["iam:*"]}'},
    {"terraform.tfvars": 'actions = ["s3:GetObject"]\n', "z.auto.tfvars.json": '{"actions": ["*"]}'},  # later wins
    {"main_override.tf": 'variable "actions" {\n  default = ["*"]\n}\n'},  # the reproduction
    {"override.tf.json": '{"variable": {"actions": {"default": ["*"]}}}'},
    {"x_override.tf": 'resource "aws_iam_role_policy" "p" {\n  policy = jsonencode({Statement = [{Effect = '
                      '"Allow", Action = "*", Resource = "*"}]})\n}\n'},  # an argument of a resource
    {"admin.tf.json": ADMIN_JSON},  # the reproduction
    {"admin.tofu": ADMIN_TF},  # the reproduction
    {"admin.tofu.json": ADMIN_JSON},
])
def test_every_file_terraform_or_opentofu_reads_is_read(tmp_path, files):
    code, report = gate(tmp_path, files)
    assert code == 1 and checks(report) & {"admin-wildcard", "unused-actions"}, report.get("findings")


@pytest.mark.parametrize("files", [
    {},
    {"terraform.tfvars.json": '{"actions": ["*"]}', "a.auto.tfvars": 'actions = ["s3:GetObject"]\n'},
    {"override.tf": 'variable "actions" {\n  default = ["s3:GetObject"]\n}\n'},
    {"narrow.tf.json": json.dumps({"locals": {"x": "s3:GetObject"}})},
])
def test_controls_a_narrow_grant_in_the_same_files_passes(tmp_path, files):
    code, report = gate(tmp_path, files)
    assert code == 0, report.get("findings")


def test_a_tf_file_a_tofu_file_shadows_is_an_unresolved_grant(tmp_path):
    # OpenTofu reads main.tofu instead of main.tf; Terraform reads main.tf: which is deployed is unknown
    code, report = gate(tmp_path, {"main.tofu": ROLE.replace("ACTION", "var.actions")}, '["*"]')
    assert code == 1 and "unresolved-grant" in checks(report)
    [f] = [f for f in report["findings"] if f["check"] == "unresolved-grant"]
    assert f["file"] == "infra/main.tf" and "OpenTofu reads main.tofu" in f["message"]


def test_an_override_of_nothing_is_an_error(tmp_path):
    code, report = gate(tmp_path, {"override.tf": 'variable "nope" {\n  default = 1\n}\n'})
    assert code == 2 and "override of variable 'nope'" in json.dumps(report["errors"])


# -- 6. the evaluator answers as Terraform does, or not at all --------------------------------------

@pytest.mark.parametrize("action", [
    'replace("s3:GetObjec", "/^(s3:GetObjec)$/", "$1t*")',  # RE2: `$1t` is the group named 1t: "*"
    'trimspace(replace("*\\n", "/^\\\\*$/", "s3:GetObject"))',  # RE2: `$` is the end of the text
    'replace("s3:GetObject", "/(?i)GETOBJECT/", "*")',  # flags: not reproduced, unresolved
    'lower("\\u0130AM:*")',  # Go: "iam:*"
    'upper("s3:getobject\\u0131")',
    '"e\\u0301" == "\\u00e9" ? "*" : "s3:GetObject"',  # strings are NFC in Terraform: equal
    'length("e\\u0301") == 2 ? "s3:GetObject" : "*"',  # one grapheme
    '"s3:GetObject${substr(tostring(1e23), 1, 1) == "9" ? "" : "*"}"',  # Terraform prints 1e23 exactly
    '(-1 % 3) == 2 ? "s3:GetObject" : "*"',  # Go: -1
    'title("s3:getObject") == "S3:Getobject" ? "s3:GetObject" : "*"',  # Go's Title lowers nothing
    'element(["*", "s3:GetObject"], -1)',
    '"s3:GetObject${abspath("x") == "x" ? "" : "*"}"',
])
def test_a_function_iamgate_cannot_reproduce_exactly_never_passes(tmp_path, action):
    code, report = gate(tmp_path, {}, action)
    assert code == 1 and checks(report) & {"unresolved-grant", "admin-wildcard", "unused-actions"}, report


@pytest.mark.parametrize("action", [
    'replace("s3:GetObjec", "/^(s3:GetObjec)$/", "$${1}t")',
    'replace("s3:GetXbject", "/X/", "O")',
    'lower("S3:GETOBJECT")',
    '"a" == "a" ? "s3:GetObject" : "*"',
    'length("ab") == 2 ? "s3:GetObject" : "*"',
    '(7 % 3) == 1 ? "s3:GetObject" : "*"',
    'format("s3:%s", "GetObject")',
])
def test_controls_the_same_functions_on_plain_input_still_pass(tmp_path, action):
    code, report = gate(tmp_path, {}, action)
    assert code == 0, report.get("findings")


# -- 7. downloaded modules ---------------------------------------------------------------------------

MODULE_CALL = 'module "extra" {\n  source  = "terraform-aws-modules/iam/aws//modules/iam-policy"\n  version = "5.30.0"\n  role = aws_iam_role.app.name\n}\n'
DECOY = ('variable "role" {}\nresource "aws_iam_role_policy" "x" {\n  role = var.role\n  policy = jsonencode({Statement = '
         '[{Effect = "Allow", Action = "s3:GetObject", Resource = "*"}]})\n}\n')


def _manifest(source="registry.terraform.io/terraform-aws-modules/iam/aws//modules/iam-policy", version="5.30.0"):
    return json.dumps({"Modules": [{"Key": "", "Source": "", "Dir": "."}, {
        "Key": "extra", "Source": source, "Version": version, "Dir": ".terraform/modules/extra"}]})


def _git(cwd, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def test_a_committed_terraform_folder_is_the_authors_not_a_download(tmp_path):
    files = {"extra.tf": MODULE_CALL, ".terraform/modules/modules.json": _manifest(),
             ".terraform/modules/extra/main.tf": DECOY}
    assert gate(tmp_path, files)[0] == 0  # not a repository: as terraform init left it
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", "-f", ".")
    _git(tmp_path, "commit", "-q", "-m", "decoy")
    code, report = gate(tmp_path, files)
    assert code == 1 and "unresolved-grant" in checks(report)
    messages = [u["message"] for u in report["findings"]]
    assert any("git tracks the .terraform folder" in m for m in messages)


@pytest.mark.parametrize("manifest", [
    _manifest(source="registry.terraform.io/someone-else/iam/aws//modules/iam-policy"),
    _manifest(version="4.0.0"),
    None,  # not downloaded at all
])
def test_a_remote_module_that_is_not_its_download_is_an_unresolved_grant(tmp_path, manifest):
    files = {"extra.tf": MODULE_CALL, ".terraform/modules/extra/main.tf": DECOY}
    if manifest:
        files[".terraform/modules/modules.json"] = manifest
    code, report = gate(tmp_path, files)
    assert code == 1 and "unresolved-grant" in checks(report)
    (tmp_path / ".iamgate.yml").write_text("trusted-modules:\n  - terraform-aws-modules/iam/aws//*\n")
    code, report = gate(tmp_path, files)
    assert code == 0 and any("trusted-modules" in f["message"] for f in report["findings"])


def test_trusted_modules_is_validated(tmp_path):
    (tmp_path / ".iamgate.yml").write_text("trusted-modules: terraform-aws-modules/*\n")
    code, _ = gate(tmp_path, {})
    assert code == 2


# -- 8. a work budget ------------------------------------------------------------------------------

NESTED_FOR = ('locals {\n  a = [for i in range(1000) : [for j in range(1000) : [for k in range(1000) : '
              '"${i}-${j}-${k}"]]]\n}\n' + ROLE.replace("ACTION", 'length(local.a) > 0 ? "s3:GetObject" : "*"'))


def _foreach_template() -> str:
    items = [f"i{n}" for n in range(300)]
    inner = {"Fn::ForEach::C": ["C", items, {"R${A}${B}${C}": {
        "Type": "AWS::IAM::Role", "Properties": {"RoleName": "r${A}${B}${C}", "AssumeRolePolicyDocument": {}}}}]}
    doc = {"AWSTemplateFormatVersion": "2010-09-09", "Transform": "AWS::LanguageExtensions",
           "Resources": {"Fn::ForEach::A": ["A", items, {"Fn::ForEach::B": ["B", items, inner]}]}}
    return json.dumps(doc)


MEASURED = """
import resource, runpy, sys
sys.argv = ["iamgate", "check", "."]
try:
    runpy.run_module("iamgate", run_name="__main__")
    code = 0
except SystemExit as e:
    code = e.code
r = resource.getrusage(resource.RUSAGE_SELF)
peak = r.ru_maxrss  # Linux counts the forking parent's peak in it (kept across exec): the image's own, where known
try:
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    pass
sys.stderr.write(f"RUSAGE {r.ru_utime + r.ru_stime} {peak}\\n")
sys.exit(code)
"""


def _doubling(first: str, step: str) -> str:
    """Sixty locals, each twice the one before: 2^60 elements or characters asked for in a few lines."""
    body = "".join(f"  l{i} = {step.format(p=f'local.l{i - 1}')}\n" for i in range(1, 60))
    return (f"locals {{\n  l0 = {first}\n{body}}}\n"
            + ROLE.replace("ACTION", 'length(local.l59) > 0 ? "s3:GetObject" : "*"'))


@pytest.mark.parametrize("name, text", [
    ("main.tf", NESTED_FOR), ("loops.json", _foreach_template()),  # the reproductions
    ("text.tf", _doubling('"' + "a" * 100 + '"', '"${{{p}}}${{{p}}}"')),  # strings doubled
    ("lists.tf", _doubling("range(1000)", "concat({p}, {p})")),  # lists doubled
])
def test_an_expansion_over_budget_is_an_error_naming_the_file_in_seconds(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    assert len(text) < 8000
    r = subprocess.run([sys.executable, "-c", MEASURED], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{name}:" in r.stdout and "work budget of 100,000 elements" in r.stdout
    cpu_seconds, peak_kib = r.stderr.rsplit("RUSAGE ", 1)[1].split()
    # the CPU time of the scan, start-up included (wall time varies with the machine's load)
    assert float(cpu_seconds) < 10 and int(peak_kib) < 1024 * 1024, (cpu_seconds, peak_kib)
