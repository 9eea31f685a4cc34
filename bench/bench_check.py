"""`iamgate check` on 1,000 roles (a generated set of CloudFormation templates plus baselines), with
issue 18's targets, all measured in this one run:

- the JSON report (iamgate.report/v2) of the 1,000 roles is under 100 MB;
- `check --format json` takes at most 1.3x `check --format text`;
- `check --format text` takes at most 0.25x policyuniverse's expansion of the same statements (the peer);
- cost grows linearly: t(1,000 roles) / t(250 roles) < 4.6 (text).

Times are CPU seconds (user + system) of the whole CLI run in a child process, and of the peer in this
process: the machine is shared, and wall time moves with its load (printed too). Each is the best of --runs;
the text, JSON and small-set runs and the peer take turns (the peer in the first --peer-runs rounds, default
all), so that a ratio between them does not rest on the load of two different minutes.
iamgate's bytecode is compiled first, as pip does when it installs a package: without it (an editable install
under PYTHONDONTWRITEBYTECODE) every run would compile ~110 modules again, 0.2-0.4 s (--no-compile keeps that).

Usage: python bench/bench_check.py [--roles 1000] [--small 250] [--runs 3] [--peer-runs N] [--v1] [--keep DIR] [--no-compile]
--v1 also times and sizes the old iamgate.report/v1 (`--json-version 1`), the "before" of the JSON report.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ACTION_SETS = [
    ["s3:GetObject", "s3:PutObject", "s3:ListBucket"], ["dynamodb:*"], ["sqs:*", "sns:Publish"],
    ["ec2:Describe*", "ec2:StartInstances"], ["kms:Decrypt", "kms:GenerateDataKey*"], ["logs:*"],
    ["lambda:InvokeFunction", "lambda:Get*"], ["iam:PassRole", "iam:Get*", "iam:List*"],
    ["cloudwatch:PutMetricData", "xray:Put*"], ["secretsmanager:GetSecretValue", "ssm:GetParameter*"],
]


def generate(root: Path, roles: int, per_template: int = 10) -> int:
    rng = random.Random(7)
    (root / "infra").mkdir(parents=True)
    (root / "baselines").mkdir()
    statements = 0
    for t in range(roles // per_template):
        resources = {}
        for r in range(per_template):
            n = t * per_template + r
            stmts = []
            for k in range(rng.randint(2, 5)):
                st = {"Sid": f"S{k}", "Effect": "Allow", "Action": rng.choice(ACTION_SETS), "Resource": "*"}
                if rng.random() < 0.05:
                    st = {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"}
                stmts.append(st)
            statements += len(stmts)
            resources[f"Role{n}"] = {"Type": "AWS::IAM::Role", "Properties": {
                "RoleName": {"Fn::Sub": f"svc-{n}-${{Env}}"},
                "Policies": [{"PolicyName": "p", "PolicyDocument": {"Version": "2012-10-17", "Statement": stmts}}]}}
            used = sorted({a.replace("*", "Object") if a.endswith("*") else a for st in stmts
                           for a in (st.get("Action") or ["s3:GetObject"]) if rng.random() < 0.5})
            policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": used or ["s3:ListBucket"],
                                                              "Resource": "*"}]}
            (root / "baselines" / f"svc-{n}-prod.json").write_text(json.dumps({
                "generatedPolicyResult": {"generatedPolicies": [{"policy": json.dumps(policy)}], "properties": {
                    "principalArn": f"arn:aws:iam::111122223333:role/svc-{n}-prod", "isComplete": True,
                    "cloudTrailProperties": {"startTime": "2026-08-24T00:00:00Z", "endTime": "2026-11-22T00:00:00Z",
                                             "trailProperties": []}}},
                "jobDetails": {"jobId": str(n), "status": "SUCCEEDED"}}))
        template = {"AWSTemplateFormatVersion": "2010-09-09",
                    "Parameters": {"Env": {"Type": "String", "Default": "prod"}}, "Resources": resources}
        (root / "infra" / f"stack{t}.yaml").write_text(json.dumps(template, indent=2))
    return statements


def run_turns(jobs: list[tuple[Path, list[str]]], runs: int, peer_root: Path, peer_runs: int):
    """`run_check` of each (root, args) once per round, `runs` rounds, the peer in the first `peer_runs`:
    ((best CPU, best wall, exit code) per job, (best CPU, best wall, statements) of the peer)."""
    got, peers = [], []
    for i in range(runs):
        got.append([run_check(root, args, 1) for root, args in jobs])
        if i < peer_runs:
            peers.append(peer(peer_root, 1))
    best = [(min(r[i][0] for r in got), min(r[i][1] for r in got), got[-1][i][2]) for i in range(len(jobs))]
    return best, (min(p[0] for p in peers), min(p[1] for p in peers), peers[0][2])


def run_check(root: Path, args: list[str], runs: int) -> tuple[float, float, int]:
    """(best CPU seconds, best wall seconds, exit code) of `iamgate check infra --baselines baselines ARGS`."""
    cpu, wall, code = [], [], 0
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "iamgate", "check", "infra", "--baselines", "baselines", *args],
                              cwd=root, capture_output=True, text=True)
        wall.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        code = proc.returncode
        if code not in (0, 1):
            sys.exit(f"iamgate check {' '.join(args)} failed ({code}): {proc.stderr[-2000:]}")
    return min(cpu), min(wall), code


def peer(root: Path, runs: int) -> tuple[float, float, int]:
    from policyuniverse.expander_minimizer import expand_policy
    stmts = [st for f in sorted((root / "infra").glob("*.yaml"))
             for r in json.loads(f.read_text())["Resources"].values()
             for st in r["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]]
    cpu, wall = [], []
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        for st in stmts:
            expand_policy({"Version": "2012-10-17", "Statement": [st]})
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return min(cpu), min(wall), len(stmts)


def verdict(value: float, limit: float, below: bool = False, unit: str = "") -> str:
    return f"target {'<' if below else '<='} {limit:g}{unit}: " + (
        "ok" if (value < limit if below else value <= limit) else "MISSED")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--roles", type=int, default=1000)
    ap.add_argument("--small", type=int, default=250, help="the smaller set, for t(roles)/t(small)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--peer-runs", type=int, help="rounds that also time the peer (default: all of them)")
    ap.add_argument("--v1", action="store_true", help="also the iamgate.report/v1 JSON report (slow, ~580 MB)")
    ap.add_argument("--keep", help="generate into this folder and keep it")
    ap.add_argument("--no-compile", action="store_true", help="do not compile iamgate's bytecode before timing")
    args = ap.parse_args()
    if not args.no_compile:
        import compileall
        import iamgate
        for folder in {Path(iamgate.__file__).parent, Path(importlib.import_module("iamgate.checks").__file__).parent}:
            compileall.compile_dir(folder, quiet=1)
    base = Path(args.keep or tempfile.mkdtemp(prefix="iamgate-bench-"))
    big, small = base / f"roles-{args.roles}", base / f"roles-{args.small}"
    n_statements = generate(big, args.roles)
    generate(small, args.small)
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; python {sys.version.split()[0]}; best of {args.runs} "
          f"runs, CPU seconds (wall in brackets); bytecode {'not ' if args.no_compile else ''}compiled first")

    ((text, text_wall, code), (js, js_wall, _), (t_small, t_small_wall, _)), (p_cpu, p_wall, n) = run_turns(
        [(big, ["--format", "text", "--output", "report.txt"]), (big, ["--format", "json", "--output", "report.json"]),
         (small, ["--format", "text", "--output", "report.txt"])], args.runs, big,
        args.runs if args.peer_runs is None else max(1, args.peer_runs))
    print(f"check --format text, {args.roles} roles, {n_statements} statements (exit {code}): "
          f"{text:.2f} s ({text_wall:.2f} s)")
    size = (big / "report.json").stat().st_size / 1e6
    report = json.loads((big / "report.json").read_text())
    matched = sum(1 for p in report["principals"] if p["baseline"])
    print(f"check --format json ({report['schema']}): {js:.2f} s ({js_wall:.2f} s); {len(report['principals'])} "
          f"roles ({matched} with baselines), {len(report['findings'])} findings; report {size:.1f} MB "
          f"({verdict(size, 100, below=True, unit=' MB')})")
    del report
    if args.v1:
        v1, v1_wall, _ = run_check(big, ["--format", "json", "--json-version", "1", "--output", "report-v1.json"],
                                   args.runs)
        v1_size = (big / "report-v1.json").stat().st_size / 1e6
        (big / "report-v1.json").unlink()
        print(f"before: check --format json --json-version 1: {v1:.2f} s ({v1_wall:.2f} s), report {v1_size:.1f} MB; "
              f"v1/text {v1 / text:.2f}x, v1/v2 size {v1_size / size:.1f}x")
    print(f"check --format text, {args.small} roles: {t_small:.2f} s ({t_small_wall:.2f} s)")
    print(f"peer: policyuniverse.expand_policy on the same {n} statements: {p_cpu:.2f} s ({p_wall:.2f} s), best of "
          f"{args.runs if args.peer_runs is None else max(1, args.peer_runs)}")
    print("ratios, this run:")
    print(f"  json / text            {js / text:.2f}  ({verdict(js / text, 1.3)})")
    print(f"  text / policyuniverse  {text / p_cpu:.2f}  ({verdict(text / p_cpu, 0.25)})")
    print(f"  t({args.roles}) / t({args.small})       {text / t_small:.2f}  ({verdict(text / t_small, 4.6, below=True)})")
    print(f"  json report            {size:.1f} MB ({verdict(size, 100, below=True, unit=' MB')})")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
