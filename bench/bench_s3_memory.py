"""Peak memory of reading CloudTrail from S3: 400 objects of 1 MiB from a local moto S3 server.

    python bench/bench_s3_memory.py [--objects 400] [--mib 1] [--jobs N] [--in-flight N] [--unbounded]

The moto server runs in this process (it holds the objects); each measured read runs in a child
process, which reports its own peak RSS (VmHWM: ru_maxrss would count the pages a fork shares with
this large parent) and the peak memory of it and its process-pool workers together (the sum of their
proportional set sizes, so pages a fork shares are counted once; sampled every 5 ms).
`--unbounded` reads as iamgate did before issue 13 (ThreadPoolExecutor(16).map over every object:
all downloads submitted at once, results held until parsed), for comparison in the same run.
The limit for the default settings is 300 MB (issue 13).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "111122223333"

CHILD = r"""
import glob, json, os, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from iamgate.usage import _ct_s3
from iamgate.usage.cloudtrail import CloudTrailUsage

def kb(pid, field, name="status"):
    try:
        with open(f"/proc/{pid}/{name}") as f:
            return next(int(l.split()[1]) for l in f if l.startswith(field + ":"))
    except (OSError, StopIteration):
        return 0

peak = {"tree": 0}
def sample():  # this process plus its pool workers: proportional set sizes (shared pages split), summed
    while True:
        kids = [c for t in glob.glob(f"/proc/{os.getpid()}/task/*/children") for c in open(t).read().split()]
        pids = [os.getpid(), *kids]
        peak["tree"] = max(peak["tree"], sum(kb(p, "Pss", "smaps_rollup") for p in pids))
        time.sleep(0.005)
threading.Thread(target=sample, daemon=True).start()
opts = json.loads(sys.argv[1])
if opts["unbounded"]:
    def old_map(fn, items, limit=None):  # the reading before issue 13
        with ThreadPoolExecutor(16) as dl:
            yield from dl.map(fn, list(items))
    _ct_s3.bounded_map = old_map
t = time.perf_counter()
summary, errors = CloudTrailUsage([opts["url"]], jobs=opts["jobs"]).scan()
took = time.perf_counter() - t
print(json.dumps({"files": summary.files, "events": summary.events, "errors": len(errors), "seconds": took,
                  "peak_rss_mb": kb("self", "VmHWM") / 1024, "peak_tree_mb": peak["tree"] / 1024}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_file(i: int, size: int) -> bytes:
    """One CloudTrail delivery file of about `size` bytes."""
    record = {"eventVersion": "1.08", "userIdentity": {
        "type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/app-{i % 40:02d}-role/s",
        "accountId": ACCOUNT, "sessionContext": {"sessionIssuer": {
            "type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/app-{i % 40:02d}-role"}}},
        "eventTime": "2026-11-20T10:00:00Z", "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
        "awsRegion": "us-east-1", "sourceIPAddress": "10.0.0.1", "userAgent": "aws-sdk-go/1.0",
        "requestParameters": {"bucketName": "data", "key": "x" * 200}, "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT}
    one = len(json.dumps(record)) + 2
    return json.dumps({"Records": [record] * max(1, size // one)}).encode()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=400)
    ap.add_argument("--mib", type=float, default=1.0)
    ap.add_argument("--jobs", type=int, default=None, help="CloudTrailUsage jobs (default: all cores)")
    ap.add_argument("--in-flight", type=int, default=None, help="IAMGATE_S3_IN_FLIGHT (default: iamgate's)")
    args = ap.parse_args()

    import logging

    import boto3
    from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    env.pop("AWS_PROFILE", None)
    if args.in_flight:
        env["IAMGATE_S3_IN_FLIGHT"] = str(args.in_flight)
    try:
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="trail")
        t = time.perf_counter()
        size = int(args.mib * (1 << 20))
        body = None
        for i in range(args.objects):
            body = log_file(i, size) if body is None or i % 40 < 1 else body
            s3.put_object(Bucket="trail", Key=f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/20/"
                                              f"{ACCOUNT}_CloudTrail_us-east-1_20261120T1000Z_{i:05d}.json", Body=body)
        print(f"uploaded {args.objects} objects of {len(body) / (1 << 20):.2f} MiB in {time.perf_counter() - t:.1f} s")
        for unbounded in (False, True):
            opts = {"url": "s3://trail/AWSLogs/", "jobs": args.jobs, "unbounded": unbounded}
            out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(opts)], env=env, cwd=ROOT,
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            name = "before issue 13 (unbounded map)" if unbounded else "bounded (this version)"
            print(f"{name:34s} peak RSS {r['peak_rss_mb']:6.1f} MB (main process), {r['peak_tree_mb']:6.1f} MB "
                  f"(with its workers, PSS); {r['files']} files, {r['events']} events, {r['errors']} errors, "
                  f"{r['seconds']:.1f} s")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
