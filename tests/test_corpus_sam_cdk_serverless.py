"""The shared corpus: every SAM template, CDK stack and serverless.yml is read or reported, nothing crashes."""
from __future__ import annotations

INTERNAL = ("internal error", "nested too deeply")


def run(corpus_scan, kind: str):
    scanned = corpus_scan(kind)
    ws, result, elapsed = scanned.ws, scanned.result, scanned.seconds
    statements = sum(len(pol.statements) for p in result.principals for pol in p.policies)
    print(f"\n{kind}: files={len(ws.files)} principals={len(result.principals)} statements={statements} "
          f"unresolved={len(result.unresolved)} errors={len(result.errors)} time={elapsed:.1f}s")
    assert not [e for e in result.errors if any(m in e.message for m in INTERNAL)]
    assert all(e.file and e.line for e in result.errors), [e for e in result.errors if not e.line]
    assert all(u.location.file and u.location.line for u in result.unresolved)
    return ws, result


def test_sam_corpus(corpus_scan):
    ws, result = run(corpus_scan, "sam")
    sam_files = [f for f in ws.files if f.suffix in (".yaml", ".yml", ".json", ".template")
                 and "AWS::Serverless-2016-10-31" in ws.head(f, 1 << 20)]
    assert len(sam_files) > 500
    assert all(ws.is_claimed(f) for f in sam_files)
    files_read = {p.location.file for p in result.principals if p.source == "sam"}
    errored = {e.file for e in result.errors}
    assert len(files_read | errored) > 450
    assert sum(p.source == "sam" for p in result.principals) > 700


def test_cdk_corpus(corpus_scan):
    ws, result = run(corpus_scan, "cdk")
    stacks = [f for f in ws.files if f.name.endswith(".template.json")]
    assert len(stacks) > 380 and all(ws.is_claimed(f) for f in stacks)
    assert all(p.source == "cdk" for p in result.principals)
    # the construct path wherever the template or the manifest records it (newer CDK keeps it in a
    # <stack>.metadata.json that the corpus does not carry)
    named = [p for p in result.principals if p.aliases]
    assert len(named) > 300 and all("/" in p.aliases[0] for p in named)
    assert not result.errors


def test_serverless_corpus(corpus_scan):
    ws, result = run(corpus_scan, "serverless")
    services = [f for f in ws.files if f.name in ("serverless.yml", "serverless.yaml")]
    assert len(services) > 200 and all(ws.is_claimed(f) for f in services)
    assert sum(p.source == "serverless" for p in result.principals) > 100
