"""Remote modules that `terraform init` downloaded are read from .terraform/modules/modules.json."""
from __future__ import annotations

import json
import shutil

from conftest import FIXTURES
from iamgate.sources import Workspace
from iamgate.sources.terraform.configuration import TerraformSource

TF = FIXTURES / "terraform"


def collect(path, base):
    return TerraformSource().collect(Workspace([str(path)], base=str(base)))


def _copy(tmp_path):
    """The fixture outside iamgate's own repository, where git tracks it (a tracked .terraform is not read)."""
    shutil.copytree(TF / "downloaded", tmp_path / "downloaded")
    return tmp_path


def test_downloaded_modules_are_read_with_their_inputs_and_nested_keys(tmp_path):
    r = collect(_copy(tmp_path) / "downloaded", tmp_path)
    (role,) = r.principals
    assert (role.id, role.name, str(role.location)) == ("module.role.aws_iam_role.this", "app-",
                                                        "downloaded/.terraform/modules/role/main.tf:4")
    by_name = {pol.name: pol for pol in role.policies}
    # a local module inside the download, with the root's inputs
    data = by_name["app-data"]
    assert [s.actions for s in data.statements] == [("s3:GetObject", "s3:PutObject")]
    assert str(data.location) == "downloaded/.terraform/modules/role/modules/policy/main.tf:4"
    # a remote module called by a remote module: key "role.irsa"
    assert str(by_name["AmazonEKS_CNI_Policy"].location) == "downloaded/.terraform/modules/role.irsa/main.tf:3"
    assert not r.errors


def test_listed_but_missing_and_not_downloaded_modules_are_unresolved_grants(tmp_path):
    r = collect(_copy(tmp_path) / "downloaded", tmp_path)
    notes = {u.location.line: u.message for u in r.unresolved if u.location.file == "downloaded/main.tf"}
    assert "the downloaded directory '.terraform/modules/missing/modules/iam-user'" in notes[9]
    assert "is missing" in notes[9]
    assert "module not_downloaded" in notes[13] and "not downloaded here" in notes[13]
    assert all(u.grant for u in r.unresolved if u.location.line in (9, 13))  # could grant anything


def _repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    shutil.copytree(TF / "downloaded", repo / "infra")
    return repo


def _manifest(root, **dirs):
    path = root / ".terraform" / "modules" / "modules.json"
    installed = {m["Key"]: m for m in json.loads((TF / "downloaded" / ".terraform" / "modules" / "modules.json")
                                                 .read_text())["Modules"]}
    path.write_text(json.dumps({"Modules": [{**installed.get(k, {}), "Key": k, "Dir": v} for k, v in dirs.items()]}))


def test_a_listed_directory_outside_the_repository_is_not_followed(tmp_path):
    repo = _repo(tmp_path)
    outside = tmp_path / "outside"
    shutil.copytree(repo / "infra" / ".terraform" / "modules" / "role", outside)
    _manifest(repo / "infra", role="../../outside")
    r = collect(repo, repo)
    assert not r.principals
    assert any("module role" in u.message and "outside the scanned repository" in u.message for u in r.unresolved)


def test_a_symlinked_download_leaving_the_repository_is_not_followed(tmp_path):
    repo = _repo(tmp_path)
    outside = tmp_path / "outside"
    shutil.move(repo / "infra" / ".terraform" / "modules" / "role", outside)
    (repo / "infra" / ".terraform" / "modules" / "role").symlink_to(outside, target_is_directory=True)
    r = collect(repo, repo)
    assert not r.principals
    assert any("module role" in u.message and "outside the scanned repository" in u.message for u in r.unresolved)


def test_a_broken_manifest_is_an_error_and_the_scan_goes_on(tmp_path):
    repo = _repo(tmp_path)
    (repo / "infra" / ".terraform" / "modules" / "modules.json").write_text("{not json")
    r = collect(repo, repo)
    assert [(e.file, e.line) for e in r.errors] == [("infra/.terraform/modules/modules.json", 1)]
    assert any("module role" in u.message and "not downloaded here" in u.message for u in r.unresolved)


def test_a_manifest_linked_from_outside_the_repository_is_not_read(tmp_path):
    repo = _repo(tmp_path)
    manifest = repo / "infra" / ".terraform" / "modules" / "modules.json"
    outside = tmp_path / "outside.json"
    shutil.move(manifest, outside)
    manifest.symlink_to(outside)
    r = collect(repo, repo)
    assert not r.principals
    assert [(e.file, "leaves the scanned paths" in e.message) for e in r.errors] == \
        [("infra/.terraform/modules/modules.json", True)]
