"""Rebuild iamgate/data/aws_managed_policies.zip, the offline bundle of AWS managed policies, from a
policies.json such as ../shared/aws-managed-policies/policies.json
(`{"source": ..., "policies": {ARN: {"name", "version", "deprecated", "document", ...}}}`).

    python scripts/build_managed_policies.py ../shared/aws-managed-policies/policies.json --date 2026-08-22

The bundle is a zip archive, one deflated member per policy (`policy/<path><name>.json`, holding
`{"arn", "version_id", "document"}`) plus `meta.json` (source, date, count), so that `check` reads one
policy without decompressing the others. The same input always gives the same bytes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from iamgate.reference import managed_policies as managed  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("policies", type=Path, help="policies.json")
    ap.add_argument("--date", required=True, help="the day the documents were read, YYYY-MM-DD")
    ap.add_argument("--out", type=Path, default=ROOT / "iamgate" / "data" / managed.BUNDLE_NAME)
    args = ap.parse_args(argv)
    data = json.loads(args.policies.read_text(encoding="utf-8"))
    count = managed.write_bundle(args.out, data["policies"], source=data["source"], date=args.date)
    print(f"{args.out}: {count} AWS managed policies of {args.date}, {args.out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
