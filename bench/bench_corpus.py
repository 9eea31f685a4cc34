"""Scanning ../shared/corpus whole with `iamgate check`, cold and warm, with per-corpus counts.

Usage: python bench/bench_corpus.py [CORPUS_DIR]    (default ../shared/corpus)
Cold: a fresh catalog cache and no bytecode cache; warm: the same command again.
The peer in the same run: parsing the same files with the plain parsers alone (json, PyYAML's
C loader, python-hcl2), with no extraction at all; the ratio says what extraction costs on top.
Targets: under 60 s cold and under 30 s warm on the 2-core machine (issue 3); the full scan under 15 s
(issue 12). The machine is shared, so the CPU seconds of each run are shown beside the wall time.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_check(corpus: Path, cache: str, extra_env: dict) -> tuple[float, float, dict]:
    """Wall seconds, CPU seconds and the JSON report of one `iamgate check`."""
    out = Path(cache) / "report.json"
    env = {**os.environ, "XDG_CACHE_HOME": cache, **extra_env}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "iamgate", "check", str(corpus), "--format", "json", "--output", str(out),
                    "--fail-on", "never"], env=env, cwd=corpus, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, json.loads(out.read_text())


def parse_only(corpus: Path) -> float:
    import hcl2
    import yaml
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    t = time.perf_counter()
    for path in corpus.rglob("*"):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".json":
                json.loads(text)
            elif path.suffix in (".yaml", ".yml"):
                yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
            elif path.suffix == ".tf":
                hcl2.loads(text)
        except Exception:  # noqa: BLE001 - the peer only has to try
            pass
    return time.perf_counter() - t


def main() -> int:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "corpus"
    if not corpus.exists():
        print(f"no corpus at {corpus}")
        return 2
    with tempfile.TemporaryDirectory() as cache:
        cold, cold_cpu, report = run_check(corpus, cache, {"PYTHONDONTWRITEBYTECODE": "1"})
        warm, warm_cpu, _ = run_check(corpus, cache, {})
    peer = parse_only(corpus)
    per: dict[str, list[int]] = {}
    for p in report["principals"]:
        kind = (p["file"] or "?").split("/", 1)[0]
        per.setdefault(kind, [0, 0])
        per[kind][0] += 1
        per[kind][1] += sum(len(pol["statements"]) for pol in p["policies"])
    for kind in sorted(per):
        unresolved = sum(1 for u in report["unresolved"] if u["file"].startswith(kind + "/"))
        errors = sum(1 for e in report["errors"] if e["file"].startswith(kind + "/"))
        print(f"  {kind:16} principals {per[kind][0]:5}  statements {per[kind][1]:5}  "
              f"unresolved {unresolved:5}  errors {errors:3}")
    print(f"iamgate check ../shared/corpus: cold {cold:.1f} s (target < 60), warm {warm:.1f} s (target < 30; "
          f"issue 12: < 15); CPU {cold_cpu:.1f} s cold, {warm_cpu:.1f} s warm")
    print(f"peer, parsing the same files alone: {peer:.1f} s; iamgate warm / parse-only = {warm / peer:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
