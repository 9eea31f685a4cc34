"""What AWS's per-action support table and the managed-policy bundle cost `check`.

Usage: python bench/bench_support.py [--runs 7]

1. The support table: parsing `action_support.json.gz` in-process, and the whole cost in a fresh
   interpreter (`import iamgate.reference.support; support.load()` against the import alone). Target: < 50 ms.
2. `check` on a template that attaches no managed policy, against the same template attaching
   AdministratorAccess (the peer in the same run: what opening the bundle and reading one policy
   costs), and whether the first run opened the bundle at all (it must not).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
WITH_MANAGED = {"Resources": {"AppRole": {"Type": "AWS::IAM::Role", "Properties": {
    "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []},
    "ManagedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"]}}}}


def fresh(code: str, runs: int) -> float:
    """Median wall seconds of a fresh interpreter running `code`."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cli(args: list[str], cwd: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "iamgate", *args], cwd=cwd, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from iamgate.reference import managed_policies as managed, support

    raw = (ROOT / "iamgate" / "data" / support.FILE_NAME).read_bytes()
    parses = []
    for _ in range(args.runs):
        t = time.perf_counter()
        data = support.parse(raw, "shipped")
        parses.append(time.perf_counter() - t)
    parse_ms = statistics.median(parses) * 1000
    print(f"support table: {len(raw):,} bytes, {len(data.listed):,} actions; parse in-process {parse_ms:.1f} ms "
          f"(median of {args.runs})")
    base = fresh("import iamgate.reference.support", args.runs)
    loaded = fresh("import iamgate.reference.support as s; s.load()", args.runs)
    added = (loaded - base) * 1000
    print(f"support table in a fresh interpreter: import alone {base * 1000:.0f} ms, import + load "
          f"{loaded * 1000:.0f} ms: load adds {added:.1f} ms to check (target < 50 ms): "
          f"{'ok' if added < 50 else 'OVER'}")

    with tempfile.TemporaryDirectory(prefix="iamgate-bench-support-") as tmp:
        root = Path(tmp)
        (root / "plain").mkdir()
        (root / "plain" / "p.json").write_text(json.dumps(PLAIN))
        (root / "managed").mkdir()
        (root / "managed" / "t.json").write_text(json.dumps(WITH_MANAGED))
        plain = cli(["check", "plain", "--fail-on", "never"], root, args.runs)
        with_managed = cli(["check", "managed", "--fail-on", "never"], root, args.runs)
        print(f"check without managed policies: {plain * 1000:.0f} ms; peer, the same check attaching "
              f"AdministratorAccess (bundle opened, one policy read): {with_managed * 1000:.0f} ms (median of "
              f"{args.runs})")
        opened = subprocess.run([sys.executable, "-c", (
            "import os, sys; from iamgate.config import Config; from iamgate.pipeline import analyse; "
            "from iamgate.reference import managed_policies as managed; analyse(['plain'], [], Config()); "
            "print(managed.bundle.cache_info().misses)")], cwd=root, capture_output=True, text=True,
            check=True).stdout.strip()
        print(f"bundle opened by the run without managed policies: {opened} time(s) (must be 0)")

    managed.bundle.cache_clear()
    t = time.perf_counter()
    b = managed.bundle()
    opened_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    for _ in range(100):
        b.get("arn:aws:iam::aws:policy/ReadOnlyAccess")
    lookup_ms = (time.perf_counter() - t) * 10
    size = (ROOT / "iamgate" / "data" / managed.BUNDLE_NAME).stat().st_size
    print(f"managed-policy bundle: {size:,} bytes, {b.info.count} policies; first open {opened_ms:.1f} ms, "
          f"one lookup (ReadOnlyAccess, the largest) {lookup_ms:.2f} ms")


if __name__ == "__main__":
    main()
