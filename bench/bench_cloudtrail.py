"""iamgate's CloudTrail engine vs trailscraper, side by side on generated delivery files.

    python bench/bench_cloudtrail.py [--events 500000] [--runs 3] [--trailscraper-events N (default: --events)]
                                     [--trailscraper /tmp/tsvenv/bin/trailscraper] [--workdir DIR]

1. iamgate (all cores) on --events gzipped events shaped like ../shared/corpus records, with the resources
   of each call (issue 23) and without them: the ratio must stay <= 1.3;
2. the decode floor on the same files: isal gunzip + msgspec typed decode of exactly the fields iamgate
   reads, one process per core, nothing else: iamgate's share of it must be >= 0.75; and the floor plus
   a bare counting loop (five fields, no mapping), the ceiling of any per-record Python step;
3. both tools on the same --trailscraper-events subset, in trailscraper-readable form (no
   `resources: null`: trailscraper crashes on it), `trailscraper select | trailscraper generate`.
Prints events/s for each and the ratios. Install trailscraper in its own venv:
`python -m venv /tmp/tsvenv && /tmp/tsvenv/bin/pip install trailscraper`.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_cloudtrail import generate  # noqa: E402


def dataset(root: Path, events: int, safe: bool) -> Path:
    out = root / f"{'safe' if safe else 'real'}-{events}"
    marker = root / f".complete-{out.name}"
    if not marker.exists():
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        files = generate(out, events, 2000, safe)
        marker.write_text(str(len(files)))
        print(f"generated {events} events in {len(files)} files ({time.perf_counter() - t:.1f}s) at {out}")
    return out


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _floor_file(path: str) -> int:
    from iamgate.usage._ct_read import _RESOURCES, _gunzip
    with open(path, "rb") as f:
        return len(_RESOURCES.envelope.decode(_gunzip(f.read())).Records)


def _bare_file(path: str) -> int:
    """The decode floor plus the least a Python step per record costs: count records by five fields
    (caller ARN, eventSource, eventName, errorCode, awsRegion) with their first and last times. No
    identity mapping, request detail or resources: a ceiling for any design that touches each record
    in Python, not an alternative to iamgate."""
    from iamgate.usage._ct_read import _RESOURCES, _gunzip
    with open(path, "rb") as f:
        records = _RESOURCES.envelope.decode(_gunzip(f.read())).Records
    counts: dict = {}
    for r in records:
        t, u = r.eventTime, r.userIdentity
        key = (u.arn if u is not None else None, r.eventSource, r.eventName, r.errorCode, r.awsRegion)
        slot = counts.get(key)
        if slot is None:
            counts[key] = [1, t, t]
        else:
            slot[0] += 1
            if t < slot[1]:
                slot[1] = t
            if t > slot[2]:
                slot[2] = t
    return len(records)


def run_floor(path: Path, per_file=_floor_file) -> tuple[float, int, float]:
    """The decode floor: gunzip + typed decode of the fields iamgate needs, one process per core."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    files = sorted(str(p) for p in path.rglob("*.json.gz"))
    jobs = os.cpu_count() or 1
    c, t = _cpu(), time.perf_counter()
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("fork")) as pool:
        n = sum(pool.map(per_file, files, chunksize=max(1, min(16, len(files) // (jobs * 8)))))
    return time.perf_counter() - t, n, _cpu() - c


def run_iamgate(path: Path, jobs: int | None = None, resources: bool = True) -> tuple[float, int, float]:
    """(wall seconds, events, CPU seconds over all processes): CPU time is robust to a busy machine."""
    from iamgate.reference.catalog import load_catalog
    from iamgate.usage.cloudtrail import CloudTrailUsage
    catalog = load_catalog()
    c, t = _cpu(), time.perf_counter()
    summary, errors = CloudTrailUsage([str(path)], jobs=jobs, catalog=catalog, resources=resources).scan()
    elapsed, cpu = time.perf_counter() - t, _cpu() - c
    assert not errors, errors[:3]
    return elapsed, summary.events, cpu


def run_trailscraper(exe: str, path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of select + generate)."""
    c, t = _cpu(), time.perf_counter()
    select = subprocess.Popen([exe, "select", "--log-dir", str(path), "--from", "2024-07-01", "--to", "2025-01-01"],
                              stdout=subprocess.PIPE)
    gen = subprocess.run([exe, "generate"], stdin=select.stdout, stdout=subprocess.DEVNULL)
    select.stdout.close()
    select.wait()
    if select.returncode or gen.returncode:
        raise SystemExit(f"trailscraper failed ({select.returncode}, {gen.returncode})")
    return time.perf_counter() - t, _cpu() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--runs", type=int, default=3, help="paired rounds of iamgate (with and without resources), "
                    "the floor and the bare loop; medians are printed")
    ap.add_argument("--trailscraper-events", type=int, default=None,
                    help="events for the side-by-side run (default: the same as --events; trailscraper takes ~90 s)")
    ap.add_argument("--trailscraper", default=shutil.which("trailscraper") or "/tmp/tsvenv/bin/trailscraper")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "iamgate-bench-cloudtrail"))
    a = ap.parse_args()
    root = Path(a.workdir)
    cores = os.cpu_count() or 1

    full = dataset(root, a.events, safe=False)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {cores} cores (other work skews wall-clock rates)")
    run_iamgate(full)  # warm-up, untimed: page cache, per-service reference data, the pool's first start
    secs1, n1, cpu1 = run_iamgate(full, jobs=1)
    print(f"iamgate x1  {n1:>8} events  {secs1:6.2f}s  {n1 / secs1:>10,.0f} events/s wall  (one process); "
          f"{n1 / cpu1:,.0f} events per CPU-second")
    # paired rounds: each round runs all four back to back, so that a busy spell hits a pair, not one side
    rounds = [{"with": run_iamgate(full), "without": run_iamgate(full, resources=False), "floor": run_floor(full),
               "bare": run_floor(full, _bare_file)} for _ in range(a.runs)]

    def med(kind: str, i: int) -> float:  # i: 0 wall seconds, 2 CPU seconds
        return statistics.median(r[kind][i] for r in rounds)

    def ratio(num: str, den: str, i: int) -> str:
        each = [r[num][i] / r[den][i] for r in rounds]
        return f"{statistics.median(each):5.2f}  (rounds: {', '.join(f'{x:.2f}' for x in each)})"

    n = rounds[0]["with"][1]
    secs, cpu = med("with", 0), med("with", 2)
    print(f"medians of {a.runs} paired rounds:")
    print(f"iamgate     {n:>8} events  {secs:6.2f}s  {n / secs:>10,.0f} events/s wall  ({cores} processes, gzipped, "
          f"incl. pool start and mapping); {n / cpu:,.0f} events per CPU-second -> {cores * n / cpu:,.0f}/s "
          f"on {cores} idle cores")
    print(f"iamgate without resources {n:>8} events  {med('without', 0):6.2f}s  {n / med('without', 0):>10,.0f} "
          f"events/s wall; {n / med('without', 2):,.0f} events per CPU-second")
    print(f"decode floor {n:>8} events  {med('floor', 0):6.2f}s  {n / med('floor', 0):>10,.0f} events/s wall "
          f"({cores} processes); {n / med('floor', 2):,.0f} events per CPU-second")
    print(f"decode + bare counting loop  {med('bare', 0):6.2f}s  {n / med('bare', 0):>10,.0f} events/s wall; "
          f"{n / med('bare', 2):,.0f} events per CPU-second (5 fields, no mapping: the ceiling of a per-record "
          f"Python step)")
    print(f"  ratio iamgate / decode floor (wall)            {ratio('floor', 'with', 0)}   (target >= 0.75)")
    print(f"  ratio iamgate / decode floor (CPU)             {ratio('floor', 'with', 2)}")
    print(f"  ratio bare counting loop / decode floor (wall) {ratio('floor', 'bare', 0)}")
    print(f"  with resources / without (wall)                {ratio('with', 'without', 0)}  (target <= 1.3)")
    print(f"  with resources / without (CPU)                 {ratio('with', 'without', 2)}")

    if not os.path.exists(a.trailscraper):
        print(f"trailscraper not found at {a.trailscraper}: skipped")
        return
    same = dataset(root, a.trailscraper_events or a.events, safe=True)
    runs = [run_iamgate(same) for _ in range(a.runs)]  # median of --runs: trailscraper's one long run averages
    ig_secs, ig_cpu = statistics.median(r[0] for r in runs), statistics.median(r[2] for r in runs)  # out itself
    ig_n = runs[0][1]
    ts_secs, ts_cpu = run_trailscraper(a.trailscraper, same)
    print(f"same input ({ig_n} events, trailscraper-readable), wall and CPU (iamgate: median of {a.runs} runs):")
    print(f"  iamgate       {ig_secs:7.2f}s  {ig_n / ig_secs:>10,.0f} events/s   {ig_cpu:7.2f} CPU-s")
    print(f"  trailscraper  {ts_secs:7.2f}s  {ig_n / ts_secs:>10,.0f} events/s   {ts_cpu:7.2f} CPU-s")
    print(f"  ratio (wall, same input)           {ts_secs / ig_secs:7.1f}x   (target >= 30)")
    print(f"  ratio (CPU, same input)            {ts_cpu / ig_cpu:7.1f}x")


if __name__ == "__main__":
    main()
