"""No silent drops: every attachment, inline policy and membership reaches a principal or is noted."""
from __future__ import annotations

from conftest import FIXTURES
from iamgate.reference.managed_policies import ManagedPolicyCache
from iamgate.sources import ScanOptions, Workspace
from iamgate.sources.terraform import configuration as tf_source
from iamgate.sources.terraform.iam import LINK_TYPES, UNLINKED, IamBuilder
from iamgate.sources.terraform.configuration import TerraformSource

TF = FIXTURES / "terraform"


def collect(path, managed_dir=None):
    options = ScanOptions(managed_policy_dir=str(managed_dir) if managed_dir else None)
    return TerraformSource().collect(Workspace([str(path)], options, base=str(TF)))


def test_a_null_name_links_by_address(tmp_path):
    ManagedPolicyCache(tmp_path).put("arn:aws:iam::aws:policy/AdministratorAccess", {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    r = collect(TF / "null_names", tmp_path)
    by_id = {p.id: p for p in r.principals}
    admin = by_id["module.admin.aws_iam_role.this[0]"]
    assert (admin.name, admin.name_is_prefix) == ("admin-", True)
    grants = {pol.name: [a for s in pol.statements for a in s.actions] for pol in admin.policies}
    assert grants == {"AdministratorAccess": ["*"], "admin-": ["s3:GetObject"]}
    # `role = aws_iam_role.direct.id` with no name: linked by the resource, not dropped
    direct = by_id["aws_iam_role.direct"]
    inline = [pol for pol in direct.policies if pol.managed_arn is None]
    assert [a for pol in inline for s in pol.statements for a in s.actions] == ["sqs:SendMessage"]
    # an AWS managed policy whose ARN has only its partition unknown is read from the bundle (issue 19)
    [managed] = [pol for pol in direct.policies if pol.managed_arn]
    assert managed.managed_arn == "arn:aws:iam::aws:policy/ReadOnlyAccess" and managed.statements
    assert not [u for u in r.unresolved if u.principal_id == direct.id and "policy ARN" in u.message]
    # the attached policies are no longer principals of their own
    assert not any(p.kind == "policy" for p in r.principals)


def test_an_unresolvable_target_is_noted_at_the_attachment_with_its_expression():
    r = collect(TF / "null_names")
    notes = [u for u in r.unresolved if u.message.startswith("aws_iam_role_policy_attachment.nowhere")]
    assert len(notes) == 1
    assert str(notes[0].location) == "null_names/main.tf:28"
    assert "role = var.target_role is null" in notes[0].message
    assert not any(UNLINKED in u.message for u in r.unresolved)


def test_a_link_nothing_explains_is_still_noted():
    out = tf_source.Collector("terraform")
    res = tf_source.TfResource("aws_iam_policy_attachment.none", "managed", "aws_iam_policy_attachment",
                               {"policy_arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}, "x.tf", 3)
    IamBuilder(out, [res]).run()
    assert [(str(u.location), u.message) for u in out.unresolved] == [
        ("x.tf:3", f"aws_iam_policy_attachment.none: {UNLINKED}")]


def test_every_corpus_attachment_is_attached_or_noted(terraform_corpus):
    builders, result = terraform_corpus.builders, terraform_corpus.result
    links = dropped = 0
    for b in builders:
        explained = {m.message.split(":", 1)[0] for m in (*b.out.unresolved, *b.out.errors)
                     if UNLINKED not in m.message}
        for r in b.resources:
            if r.mode != "managed" or r.type not in LINK_TYPES:
                continue
            links += 1
            if r.address not in b.linked and r.address not in explained:
                dropped += 1
                print("dropped:", r.address, r.file, r.line)
    assert links > 300 and dropped == 0
    assert not [u for u in result.unresolved if UNLINKED in u.message]


def test_every_attached_principal_has_its_policies_or_a_note(terraform_corpus):
    builders = terraform_corpus.builders
    for b in builders:
        noted = {u.principal_id for u in b.out.unresolved}
        for pids in b.linked.values():
            for pid in pids:
                assert b.out.drafts[pid].policies or pid in noted, pid


def test_a_module_read_from_two_roots_keeps_its_notes_with_each_principal(tmp_path):
    (tmp_path / "mod").mkdir()
    (tmp_path / "mod" / "main.tf").write_text(
        'variable "arn" {}\n'
        'resource "aws_iam_role" "r" {\n  name_prefix = "r-"\n}\n'
        'resource "aws_iam_role_policy_attachment" "a" {\n  role = aws_iam_role.r.name\n  policy_arn = var.arn\n}\n')
    for root in ("one", "two"):
        (tmp_path / root).mkdir()
        (tmp_path / root / "main.tf").write_text(
            'variable "arn" {}\nmodule "m" {\n  source = "../mod"\n  arn = var.arn\n}\n')
    r = TerraformSource().collect(Workspace([str(tmp_path)], base=str(tmp_path)))
    ids = sorted(p.id for p in r.principals)
    assert ids == ["module.m.aws_iam_role.r", "two#module.m.aws_iam_role.r"]
    assert sorted(u.principal_id for u in r.unresolved if "policy ARN cannot be resolved" in u.message) == ids
