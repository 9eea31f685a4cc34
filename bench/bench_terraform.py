"""The Terraform sources on the shared corpus: counts per corpus and time.

Usage: python bench/bench_terraform.py [CORPUS_DIR]   (default ../shared/corpus)
Prints, per corpus folder, files / principals / statements / unresolved / errors and the scan
time; as the peer in the same run, how long python-hcl2's own `hcl2.loads` takes on the same
.tf files (parse only, no evaluation), and the ratio between the two.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import hcl2

from iamgate.sources import Workspace, scan

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ["terraform/aws-samples", "terraform/awslabs", "terraform/fugue", "terraform/terraform-aws-modules", "e2e"]


def main() -> int:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "corpus"
    if not corpus.exists():
        print(f"no corpus at {corpus}")
        return 2
    print(f"{'corpus':34} {'files':>6} {'principals':>10} {'statements':>10} {'unresolved':>10} {'errors':>6} "
          f"{'seconds':>8}")
    total = 0.0
    tf_files: list[Path] = []
    for name in CORPORA:
        root = corpus / name
        ws = Workspace([str(root)], base=str(corpus))
        start = time.perf_counter()
        result = scan(ws, only=["terraform", "terraform-plan"])
        elapsed = time.perf_counter() - start
        total += elapsed
        claimed = [f for f in ws.files if ws.is_claimed(f)]
        tf_files += [f for f in claimed if f.suffix == ".tf"]
        statements = sum(len(pol.statements) for p in result.principals for pol in p.policies)
        print(f"{name:34} {len(claimed):6} {len(result.principals):10} {statements:10} {len(result.unresolved):10} "
              f"{len(result.errors):6} {elapsed:8.1f}")
    start = time.perf_counter()
    failed = 0
    for f in tf_files:
        try:
            hcl2.loads(f.read_text())
        except Exception:  # noqa: BLE001 - the peer's failures are only counted
            failed += 1
    peer = time.perf_counter() - start
    print(f"iamgate terraform sources: {total:.1f} s for {len(tf_files)} .tf files plus plans")
    print(f"peer hcl2.loads (parse only): {peer:.1f} s, {failed} files it cannot parse")
    print(f"ratio iamgate / hcl2.loads: {total / peer:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
