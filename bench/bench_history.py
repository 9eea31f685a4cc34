"""What grant history costs: `iamgate check` on a generated repository of 1,000 commits x 100 principals, with
history (read from git) and without (`--no-history`), in one run.

Usage: python bench/bench_history.py [--commits 1000] [--roles 100] [--runs 3] [--keep DIR]
The repository is written with `git fast-import` (10 CloudFormation templates of 10 roles each). Its commits
span the 1,000 days up to the baselines' window end, one a day: about half change one role's grant (an
action added or removed), the rest touch other files; a merge commit every 50. Each role has a baseline
(2026-08-24 to 2026-11-22). Prints the median wall time of each mode, their ratio (target < 2x), and how
many (revision, template) evaluations the history took.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

END = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
POOL = ["s3:GetObject", "s3:PutObject", "s3:ListBucket", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",
        "sqs:SendMessage", "sqs:ReceiveMessage", "sns:Publish", "kms:Decrypt", "kms:GenerateDataKey",
        "logs:PutLogEvents", "lambda:InvokeFunction", "ssm:GetParameter", "secretsmanager:GetSecretValue",
        "cloudwatch:PutMetricData", "xray:PutTraceSegments", "ec2:DescribeInstances", "sts:AssumeRole",
        "events:PutEvents"]
PER_TEMPLATE = 10
GIT_ENV = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def template(grants: dict[int, list[str]], t: int) -> str:
    resources = {}
    for n in range(t * PER_TEMPLATE, (t + 1) * PER_TEMPLATE):
        resources[f"Role{n}"] = {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": f"svc-{n}-prod",
            "Policies": [{"PolicyName": "p", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": sorted(grants[n]), "Resource": "*"}]}}]}}
    return json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}, indent=2) + "\n"


def _data(text: str) -> bytes:
    raw = text.encode()
    return b"data %d\n" % len(raw) + raw + b"\n"


def generate(root: Path, commits: int, roles: int) -> None:
    rng = random.Random(20)
    templates = roles // PER_TEMPLATE
    grants = {n: rng.sample(POOL, 4) for n in range(roles)}
    (root / "baselines").mkdir(parents=True)
    for n in range(roles):
        used = rng.sample(grants[n], 2)
        (root / "baselines" / f"svc-{n}.json").write_text(json.dumps({
            "schema": "iamgate.baseline/v1", "principal_arn": f"arn:aws:iam::111122223333:role/svc-{n}-prod",
            "window": {"start": "2026-08-24T00:00:00Z", "end": "2026-11-22T00:00:00Z"},
            "sources": [{"kind": "cloudtrail", "events": 1000, "files": 10}],
            "used": {a.lower(): {"count": 3, "last_seen": "2026-11-20T00:00:00Z"} for a in used}}))
    stream = bytearray()
    start = END - dt.timedelta(days=commits)

    for i in range(commits):
        when = int((start + dt.timedelta(days=i, hours=12)).timestamp())
        changes = []
        if i == 0:
            changes = [(f"infra/stack{t}.json", template(grants, t)) for t in range(templates)]
            changes.append(("README.md", "generated\n"))
        elif rng.random() < 0.5:
            n = rng.randrange(roles)
            missing = [a for a in POOL if a not in grants[n]]
            if len(grants[n]) > 2 and rng.random() < 0.4:
                grants[n].remove(rng.choice(grants[n]))
            else:
                grants[n].append(rng.choice(missing))
            t = n // PER_TEMPLATE
            changes = [(f"infra/stack{t}.json", template(grants, t))]
        else:
            changes = [(f"docs/note{i % 20}.md", f"note {i}\n")]
        merge = i % 50 == 49 and i > 0
        if merge:  # a side branch forked from the previous commit, merged with --no-ff
            stream += b"commit refs/heads/side\nmark :%d\ncommitter b <b@example.com> %d +0000\n" % (
                100000 + i, when - 3600)
            stream += _data(f"side {i}") + b"from :%d\n" % i
            for path, text in changes:
                stream += b"M 100644 inline " + path.encode() + b"\n" + _data(text)
            stream += b"commit refs/heads/main\nmark :%d\ncommitter b <b@example.com> %d +0000\n" % (i + 1, when)
            stream += _data(f"merge {i}") + b"from :%d\nmerge :%d\n" % (i, 100000 + i)
            for path, text in changes:
                stream += b"M 100644 inline " + path.encode() + b"\n" + _data(text)
            continue
        stream += b"commit refs/heads/main\nmark :%d\ncommitter b <b@example.com> %d +0000\n" % (i + 1, when)
        stream += _data(f"commit {i}") + (b"from :%d\n" % i if i else b"")
        for path, text in changes:
            stream += b"M 100644 inline " + path.encode() + b"\n" + _data(text)
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, env=env, check=True)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=root, env=env, input=bytes(stream), check=True)
    subprocess.run(["git", "checkout", "-q", "-f", "main"], cwd=root, env=env, check=True)
    subprocess.run(["git", "branch", "-q", "-D", "side"], cwd=root, env=env, check=False)


def run(root: Path, history: bool) -> tuple[float, dict]:
    env = {**os.environ, "IAMGATE_NO_HISTORY": "0" if history else "1"}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "iamgate", "check", "infra", "--baselines", "baselines", "--format",
                    "json", "--output", "report.json"], cwd=root, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    return elapsed, json.loads((root / "report.json").read_text())


def evaluations(root: Path) -> tuple[int, int]:
    """(revision, unit) evaluations and distinct revisions of one in-process history run."""
    from iamgate import history as history_mod
    from iamgate.config import Config
    from iamgate.pipeline import analyse
    seen = []
    real = history_mod.History.grant

    def counting(self, unit, sha, names):
        key = (sha, tuple(sorted(names.items())))
        if key not in self._cache:
            seen.append(sha)
        return real(self, unit, sha, names)
    history_mod.History.grant = counting
    before = os.getcwd()
    os.chdir(root)
    try:
        analyse(["infra"], ["baselines"], Config(), history=history_mod.HistoryRequest(("infra",)))
    finally:
        os.chdir(before)
        history_mod.History.grant = real
    return len(seen), len(set(seen))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--roles", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", help="generate into this folder and keep it")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="iamgate-bench-history-"))
    generate(root, args.commits, args.roles)
    commits = subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=root, capture_output=True,
                             text=True).stdout.strip()
    with_h, without = [], []
    for _ in range(args.runs):  # interleaved, so both modes see the same machine load
        without.append(run(root, False)[0])
        elapsed, report = run(root, True)
        with_h.append(elapsed)
    n_evals, n_revs = evaluations(root)
    a, b = statistics.median(with_h), statistics.median(without)
    verdicts = {}
    for p in report["principals"]:
        for v, acts in p.get("actions", {}).items():
            verdicts[v] = verdicts.get(v, 0) + len(acts)
    print(f"repository: {commits} commits, {len(report['principals'])} principals in "
          f"{args.roles // PER_TEMPLATE} templates")
    print(f"iamgate check without history (--no-history): {b:.2f} s (median of {args.runs})")
    print(f"iamgate check with history:                   {a:.2f} s (median of {args.runs}); "
          f"{n_evals} (revision, template) evaluations over {n_revs} revisions")
    print(f"verdicts with history: {json.dumps(verdicts, sort_keys=True)}")
    print(f"ratio: {a / b:.2f}x (target < 2x)")


if __name__ == "__main__":
    main()
