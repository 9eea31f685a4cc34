"""A nightly refresh (one new day on top of 90 stored days) against re-reading all 91 days (issue 22).

    python bench/bench_refresh.py [--days 91] [--files-per-day 384] [--events-per-file 300] [--workdir DIR]

Builds CloudTrail delivery folders for --days days (4 regions, --files-per-day files a day: CloudTrail
delivers about every 5 minutes per region), from a pool of generated files shaped like ../shared/corpus
records (bench/gen_cloudtrail.py) hard-linked under each day's names, so that reading costs what real
files of that size cost. Then, each as its own `iamgate usage cloudtrail` process (as a nightly job runs):
1. the first run over the first days-1 days (the stored history; timed, not compared);
2. the nightly run: the newest day is delivered, the same command reads only it and merges;
3. the peer: the same 91 days read again from scratch (`--replace`, a fresh folder).
Prints the times and the ratio (3) / (2); issue 22 asks for at least 20x.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_cloudtrail import ACCOUNT, REGIONS, corpus_templates, make_record  # noqa: E402

POOL = 64  # distinct file bodies, linked under every day's names


def pool(root: Path, events_per_file: int) -> list[Path]:
    rng = random.Random(22)
    templates = corpus_templates()
    when = dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)
    out = []
    root.mkdir(parents=True, exist_ok=True)
    for i in range(POOL):
        region = REGIONS[i % len(REGIONS)]
        records = [make_record(rng.choice(templates), rng, when + dt.timedelta(seconds=s), region, False)
                   for s in range(events_per_file)]
        path = root / f"pool-{i:03d}.json.gz"
        path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode(), compresslevel=6))
        out.append(path)
    return out


def deliver(logs: Path, bodies: list[Path], day: dt.date, files_per_day: int) -> int:
    per_region = max(1, files_per_day // len(REGIONS))
    n = 0
    for r, region in enumerate(REGIONS):
        folder = logs / "AWSLogs" / ACCOUNT / "CloudTrail" / region / f"{day:%Y/%m/%d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_region):
            at = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=i * 1440 // per_region)
            name = f"{ACCOUNT}_CloudTrail_{region}_{at:%Y%m%dT%H%M}Z_{uuid.uuid4().hex[:16]}.json.gz"
            os.link(bodies[(n + r) % len(bodies)], folder / name)
            n += 1
    return n


def run(*args: str) -> float:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "iamgate", "usage", "cloudtrail", *args],
                       capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"iamgate usage cloudtrail {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=91)
    ap.add_argument("--files-per-day", type=int, default=384)
    ap.add_argument("--events-per-file", type=int, default=300)
    ap.add_argument("--workdir", help="keep the files here (default: a temporary folder, removed)")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="iamgate-bench-refresh-"))
    try:
        logs = work / "logs"
        shutil.rmtree(logs, ignore_errors=True)
        bodies = pool(work / "pool", a.events_per_file)
        first = dt.date(2026, 9, 1)
        files = sum(deliver(logs, bodies, first + dt.timedelta(days=i), a.files_per_day) for i in range(a.days - 1))
        stored, fresh = work / "stored", work / "fresh"
        for d in (stored, fresh):
            shutil.rmtree(d, ignore_errors=True)
        t_first = run(str(logs), "--out", str(stored))
        new = deliver(logs, bodies, first + dt.timedelta(days=a.days - 1), a.files_per_day)
        t_nightly = run(str(logs), "--out", str(stored))
        t_full = run(str(logs), "--out", str(fresh), "--replace")
        ratio = t_full / t_nightly
        events = (files + new) * a.events_per_file
        print(f"{a.days} days, {files + new} files, {events} events ({a.events_per_file} per file), "
              f"{os.cpu_count()} cores")
        print(f"first run over {a.days - 1} days:   {t_first:7.2f}s")
        print(f"nightly run over 1 new day:  {t_nightly:7.2f}s  ({new} files read, merged into the stored history)")
        print(f"re-reading all {a.days} days:     {t_full:7.2f}s")
        print(f"ratio: {ratio:.1f}x faster (issue 22 asks for >= 20x): {'PASS' if ratio >= 20 else 'FAIL'}")
        stored_doc = max((stored.glob("[!.]*.json")), key=lambda p: p.stat().st_size, default=None)
        if stored_doc:
            print(f"largest baseline: {stored_doc.stat().st_size} bytes "
                  f"({len(json.loads(stored_doc.read_text())['used'])} actions)")
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
