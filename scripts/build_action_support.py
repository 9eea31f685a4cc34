"""Rebuild iamgate/data/action_support.json.gz, the per-action support table, from AWS's
Service Authorization Reference JSON.

    python scripts/build_action_support.py ../shared/service-reference --date 2026-02-13
    python scripts/build_action_support.py --live            # the live endpoint, today's date

The table records, for every action, the two `SupportedBy` flags: "IAM Access Analyzer Policy
Generation" and "IAM Action Last Accessed".
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from iamgate.reference import support  # noqa: E402

OUT = ROOT / "iamgate" / "data" / support.FILE_NAME


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, help="a folder of <prefix>.json service reference files")
    ap.add_argument("--live", action="store_true", help=f"read {support.ENDPOINT} instead")
    ap.add_argument("--date", help="the day the data was served (default: today)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    date = args.date or datetime.date.today().isoformat()
    if args.live:
        from iamgate.commands.data import fetch_live
        table = fetch_live(date)
    elif args.folder:
        table = support.table_from_folder(args.folder, date, f"{support.ENDPOINT} as served on {date}")
    else:
        ap.error("give a folder or --live")
    support.write_table(args.out, table)
    parsed = support.parse(support.encode(table), str(args.out))
    print(f"{args.out}: {len(parsed.listed)} actions in {len(parsed.services)} services, "
          f"{len(parsed.generation)} reported by policy generation, {len(parsed.last_accessed)} tracked by last accessed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
