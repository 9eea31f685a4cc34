"""Robustness on real public templates (../shared/corpus): extracted or located errors, never a crash."""
from __future__ import annotations

from conftest import corpus_path
from iamgate.sources import Workspace, scan
from iamgate.sources.collector import INTERNAL_ERROR
from iamgate.sources.cloudformation.templates import is_template


def _signature(result):
    out = []
    for p in sorted(result.principals, key=lambda p: p.id):
        out.append((p.id, p.kind, p.name, p.path, tuple(
            (pol.name, pol.managed_arn, tuple((s.effect, s.sid, s.actions, s.not_actions, s.resources,
                                               s.not_resources, repr(s.condition)) for s in pol.statements))
            for pol in p.policies)))
    return out, sorted(u.message for u in result.unresolved), sorted(e.message for e in result.errors)


def _scan_corpus(corpus_scan, kind):
    ws, result = corpus_scan(kind).ws, corpus_scan(kind).result
    crashes = [e for e in result.errors if INTERNAL_ERROR in e.message]
    assert not crashes, crashes[:5]
    assert all(e.file and not e.file.startswith("/") for e in result.errors)
    return ws, result


def test_every_cloudformation_template_is_extracted_or_located(corpus_scan):
    ws, result = _scan_corpus(corpus_scan, "cloudformation")
    templates = [f for f in ws.files if f.suffix in (".yaml", ".yml", ".json", ".template")]
    unclaimed = [f for f in templates if not ws.is_claimed(f) and is_template(ws.document(f))]
    assert not unclaimed, unclaimed[:5]
    assert len(result.principals) >= 50
    assert all(e.line is not None or "MiB" in e.message for e in result.errors)


def test_every_cdk_stack_is_extracted_or_located(corpus_scan):
    ws, result = _scan_corpus(corpus_scan, "cdk")
    stacks = [f for f in ws.files if f.name.endswith(".template.json")]
    assert len(stacks) >= 380
    assert all(ws.is_claimed(f) for f in stacks)
    assert len(result.principals) >= 250


def test_yaml_and_json_twins_extract_identically():
    root = corpus_path("cloudformation")
    pairs = [(y, y.with_suffix(".json")) for y in sorted(root.rglob("*.yaml")) if y.with_suffix(".json").exists()]
    assert len(pairs) >= 121
    different = []
    for y, j in pairs:
        if _signature(scan(Workspace([str(y)]))) != _signature(scan(Workspace([str(j)]))):
            different.append(y.relative_to(root))
    assert not different, different
