"""Robustness on real Terraform: every .tf file and plan in the shared corpus is extracted or reported."""
from __future__ import annotations

import pytest

from conftest import corpus_path
from iamgate.sources import Workspace, scan
from iamgate.sources.terraform.plan import is_plan

CORPORA = {
    "terraform": ("terraform",),
    "e2e": ("e2e", "DataDog", "stratus-red-team", "v2", "internal", "attacktechniques", "aws"),
}


@pytest.fixture(scope="module", params=sorted(CORPORA))
def scanned(request):
    if request.param == "terraform":
        shared = request.getfixturevalue("terraform_corpus")
        return request.param, shared.root, shared.ws, shared.result
    root = corpus_path(*CORPORA[request.param])
    ws = Workspace([str(root)], base=str(root))
    return request.param, root, ws, scan(ws, only=["terraform", "terraform-plan"])


def test_every_tf_file_is_read(scanned):
    _, root, ws, _ = scanned
    tf = [f for f in ws.files if f.suffix == ".tf"]
    assert tf and ws.unclaimed({".tf"}) == []


def test_every_plan_is_read(scanned):
    name, root, ws, result = scanned
    plans = [f for f in ws.files if f.suffix == ".json" and is_plan(ws.document(f))]
    assert all(ws.is_claimed(f) for f in plans)
    if name == "terraform":
        assert len(plans) >= 45


def test_problems_are_located(scanned):
    _, root, ws, result = scanned
    for e in result.errors:
        assert e.file and (root / e.file).exists(), e
        assert e.line, e
        assert "cannot evaluate this module" not in e.message, e
    for u in result.unresolved:
        assert u.location.file and (root / u.location.file).exists() and u.location.line, u


def test_principals_and_statements_are_found(scanned):
    name, _, _, result = scanned
    statements = [s for p in result.principals for pol in p.policies for s in pol.statements]
    minimum = {"terraform": (350, 500), "e2e": (20, 10)}[name]
    assert len(result.principals) >= minimum[0] and len(statements) >= minimum[1]
    assert all(s.location and s.location.line for s in statements)
    ids = [p.id for p in result.principals]
    assert len(ids) == len(set((p.id, p.location.file) for p in result.principals))


def test_no_tf_file_fails_to_parse(scanned):
    """The six heredocs with trailing blanks after their marker parse: no file fails on them."""
    name, _, _, result = scanned
    if name == "terraform":
        assert not any("invalid HCL" in e.message for e in result.errors)
