"""`iamgate check` on 1,000 roles: a generated set of CloudFormation templates plus baselines.

Usage: python bench/bench_check.py [--roles 1000] [--keep DIR]
Prints the wall time of the whole CLI run, and, as the peer in the same run, how long
policyuniverse takes just to expand the same statements.
"""
from __future__ import annotations

import argparse
import json
import random
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--roles", type=int, default=1000)
    ap.add_argument("--keep", help="generate into this folder and keep it")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="iamgate-bench-"))
    n_statements = generate(root, args.roles)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "iamgate", "check", "infra", "--baselines", "baselines",
                           "--format", "json", "--output", "report.json"], cwd=root, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    report = json.loads((root / "report.json").read_text())
    matched = sum(1 for p in report["principals"] if p["baseline"])
    print(f"iamgate check: {len(report['principals'])} roles ({matched} with baselines), {n_statements} statements, "
          f"{len(report['findings'])} findings, exit {proc.returncode}: {elapsed:.2f} s (target < 10 s)")

    from policyuniverse.expander_minimizer import expand_policy
    stmts = [st for f in sorted((root / "infra").glob("*.yaml"))
             for r in json.loads(f.read_text())["Resources"].values()
             for st in r["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]]
    t = time.perf_counter()
    for st in stmts:
        expand_policy({"Version": "2012-10-17", "Statement": [st]})
    peer = time.perf_counter() - t
    print(f"peer: policyuniverse.expand_policy on the same {len(stmts)} statements alone: {peer:.2f} s "
          f"({peer / elapsed:.1f}x the whole iamgate run)")


if __name__ == "__main__":
    main()
