"""`fix` on Terraform's other policy forms: what it cannot rewrite is named, with the reason."""
from __future__ import annotations

import json
import shutil

from conftest import FIXTURES
from iamgate import cli
from iamgate.fix.files import confinement
from iamgate.formats.json import expanded

FORMS = FIXTURES / "fix" / "terraform_forms"

COMPUTED = '''
locals {
  reads = ["sqs:ReceiveMessage", "logs:DeleteLogGroup"]
}

resource "aws_iam_role_policy" "computed" {
  name   = "computed"
  role   = aws_iam_role.jobs.id
  policy = <<-EOT
    {
      "Version": "2012-10-17",
      "Statement": [
        {"Effect": "Allow", "Action": ${jsonencode(local.reads)}, "Resource": "*"}
      ]
    }
  EOT
}
'''


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_statements_fix_cannot_rewrite_are_named_with_the_reason(tmp_path, monkeypatch, capsys):
    root = tmp_path / "repo"
    shutil.copytree(FORMS, root)
    with open(root / "infra" / "main.tf", "a") as f:
        f.write(COMPUTED)
    monkeypatch.chdir(root)
    lines = (root / "infra" / "main.tf").read_text().splitlines()
    computed_line = next(n for n, line in enumerate(lines, 1) if "${jsonencode(local.reads)}" in line)
    args = ["infra", "--baselines", "baselines", "--config", "iamgate.yml"]
    code, _, err = run(capsys, "fix", *args, "--write")
    assert code == 0, err
    assert f"infra/main.tf:{computed_line}: statement not rewritten: the heredoc is not plain JSON (Expecting " \
           f"value at line {computed_line}); edit it by hand" in err
    # the others were rewritten: check finds no unused action left outside the one it named
    code, report, _ = run(capsys, "check", *args, "--format", "json")
    (jobs,) = expanded(json.loads(report))["principals"]
    assert sorted(jobs["actions"]["unused"]) == ["logs:deleteloggroup"]


def test_a_policy_file_outside_the_repository_is_not_written(tmp_path, monkeypatch, capsys):
    root = tmp_path / "repo"
    shutil.copytree(FIXTURES / "fix" / "policy_json", root)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.move(root / "infra" / "support.json", outside / "support.json")
    (root / "infra" / "support.json").symlink_to(outside / "support.json")
    before = (outside / "support.json").read_text()
    (root / "iamgate.yml").write_text(f"principals:\n  {(outside / 'support.json').as_posix()}: support-readonly\n")
    monkeypatch.chdir(root)
    code, _, err = run(capsys, "fix", "infra", "--baselines", "baselines", "--config", "iamgate.yml", "--write")
    assert "rewrote 0 statement" in err  # a link out of the scanned paths is not even read
    assert (outside / "support.json").read_text() == before


def test_confinement(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "p.json").write_text("{}")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert confinement(tmp_path / "real" / "p.json", [tmp_path]) is None
    assert confinement(tmp_path / "link" / "p.json", [tmp_path]) == \
        "link is a symbolic link; iamgate never writes through one"
    assert confinement(tmp_path / ".." / "x.json", [tmp_path]) == "the file's real path is outside the scanned paths"
    assert confinement(tmp_path.parent / "x.json", [tmp_path]) == "the file's real path is outside the scanned paths"
    (tmp_path / ".terraform" / "modules" / "m").mkdir(parents=True)
    assert "downloaded (.terraform/)" in confinement(tmp_path / ".terraform" / "modules" / "m" / "main.tf",
                                                     [tmp_path])


ESCAPED = r'''
resource "aws_iam_role_policy" "escaped" {
  name   = "escaped"
  role   = aws_iam_role.jobs.id
  policy = jsonencode({ Statement = [{ Effect = "Allow", Resource = "*",
    Action = ["ec2:TerminateInstances", "s3:GetObj\U00000065ct", "s3:Put\u004fbject"] }] })
}
'''


def test_action_names_with_hcl_escapes_are_read_as_terraform_reads_them(tmp_path, monkeypatch, capsys):
    root = tmp_path / "repo"
    shutil.copytree(FORMS, root)
    with open(root / "infra" / "main.tf", "a") as f:
        f.write(ESCAPED)
    monkeypatch.chdir(root)
    code, _, err = run(capsys, "fix", "infra", "--baselines", "baselines", "--config", "iamgate.yml", "--write")
    assert code == 0 and "internal error" not in err, err
    text = (root / "infra" / "main.tf").read_text()
    assert 'Action = ["s3:GetObj\\U00000065ct"]' in text  # the kept item exactly as written
