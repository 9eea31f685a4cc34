"""Generate synthetic CloudTrail delivery files shaped like the records in ../shared/corpus.

    python bench/gen_cloudtrail.py OUT_DIR [--events 500000] [--per-file 2000] [--trailscraper-safe]

Records are real corpus records (stratus-red-team detonation logs, trailscraper samples) with fresh
ids, times, principals and regions, written as gzipped `{"Records": [...]}` files in S3 delivery
layout (`AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/`). About 1 in 20 records has
`resources: null` and 1 in 200 no `userIdentity`, as real logs do; `--trailscraper-safe` drops `resources`
and keeps every identity, so trailscraper (which crashes on `resources: null`) can read them.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import gzip
import json
import random
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
ACCOUNT = "111122223333"
REGIONS = ("us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2")
ROLES = [f"app-{i:02d}-role" for i in range(40)]
USERS = [f"dev-{i:02d}" for i in range(10)]


def corpus_templates() -> list[dict]:
    out: list[dict] = []
    logs = CORPUS / "e2e" / "DataDog" / "stratus-red-team" / "docs" / "detonation-logs"
    for f in sorted(logs.glob("*.json")):
        data = json.loads(f.read_text())
        out.extend(r for r in data if isinstance(r, dict) and r.get("eventSource"))
    tsdir = CORPUS / "cloudtrail" / "flosell" / "trailscraper" / "tests"
    for f in sorted(tsdir.rglob("*.json")):
        data = json.loads(f.read_text())
        if isinstance(data, dict):
            out.extend(r for r in data.get("Records", ()) if isinstance(r, dict) and r.get("eventSource"))
    if not out:
        sys.exit(f"no corpus records under {CORPUS}")
    return out


def identity(rng: random.Random) -> dict:
    if rng.random() < 0.2:
        name = rng.choice(USERS)
        return {"type": "IAMUser", "principalId": "AIDA" + uuid.uuid4().hex[:16].upper(),
                "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}", "accountId": ACCOUNT,
                "accessKeyId": "AKIA" + uuid.uuid4().hex[:16].upper(), "userName": name}
    role = rng.choice(ROLES)
    return {"type": "AssumedRole", "principalId": "AROA0000000000000000:session",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/session-{rng.randrange(1000)}",
            "accountId": ACCOUNT, "accessKeyId": "ASIA" + uuid.uuid4().hex[:16].upper(),
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROA0000000000000000",
                                                 "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                                                 "accountId": ACCOUNT, "userName": role},
                               "webIdFederationData": {},
                               "attributes": {"creationDate": "2024-08-02T08:20:52Z", "mfaAuthenticated": "false"}}}


def make_record(tpl: dict, rng: random.Random, when: dt.datetime, region: str, safe: bool) -> dict:
    r = copy.copy(tpl)
    r["eventID"] = str(uuid.uuid4())
    r["requestID"] = str(uuid.uuid4())
    r["eventTime"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    r["awsRegion"] = region
    r["recipientAccountId"] = ACCOUNT
    roll = rng.random()
    if roll < 0.03:
        r["errorCode"] = "AccessDenied"
        r["errorMessage"] = "User is not authorized to perform this operation"
    if roll > 0.995 and not safe:
        r.pop("userIdentity", None)  # real records without an identity exist
    else:
        r["userIdentity"] = identity(rng)
    if not safe and roll < 0.05:
        r["resources"] = None
    elif safe:
        r.pop("resources", None)
    return r


def generate(out: Path, events: int, per_file: int, safe: bool = False, seed: int = 7) -> list[Path]:
    rng = random.Random(seed)
    templates = corpus_templates()
    start = dt.datetime(2024, 8, 1, tzinfo=dt.timezone.utc)
    files: list[Path] = []
    n = 0
    while n < events:
        count = min(per_file, events - n)
        region = REGIONS[len(files) % len(REGIONS)]
        when = start + dt.timedelta(minutes=5 * len(files))
        records = [make_record(rng.choice(templates), rng, when + dt.timedelta(seconds=i % 300), region, safe)
                   for i in range(count)]
        day = when.strftime("%Y/%m/%d")
        name = f"{ACCOUNT}_CloudTrail_{region}_{when.strftime('%Y%m%dT%H%MZ')}_{uuid.uuid4().hex[:16]}.json.gz"
        path = out / "AWSLogs" / ACCOUNT / "CloudTrail" / region / day / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode(), compresslevel=6))
        files.append(path)
        n += count
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--per-file", type=int, default=2000)
    ap.add_argument("--trailscraper-safe", action="store_true")
    a = ap.parse_args()
    files = generate(Path(a.out), a.events, a.per_file, a.trailscraper_safe)
    print(f"{len(files)} files, {a.events} events under {a.out}")


if __name__ == "__main__":
    main()
