"""The resources a CloudTrail record names (issue 23): `resources[]` and, per eventSource, fields of
`requestParameters`, turned into ARNs with AWS's ARN formats (data/cloudtrail_resources.json).

The reader calls `candidates` once per distinct (eventSource, region, account, fields, resources) of a
file and puts the answer, a tuple of (resource type name or None, ARN), into its counting key. The
parent keeps, per action, the ARNs of the action's own resource types (`ResourceFilter`) and bounds them
(`bounded`). S3 object keys are cut to their first path segment (`exports/*`) before they are counted.
"""
from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from importlib import resources as _pkg
from operator import attrgetter

from ..reference.resources import action_resource_types

BOUND = 50  # distinct ARNs kept per action; past it a count and the common prefix
_VAR = re.compile(r"\$\{([A-Za-z0-9]+)\}")


@lru_cache(maxsize=1)
def table() -> dict:
    return json.loads(_pkg.files("iamgate").joinpath("data/cloudtrail_resources.json").read_text())


@lru_cache(maxsize=1)
def request_fields() -> tuple[str, ...]:
    """Every requestParameters field any rule reads: the reader decodes these and nothing else."""
    return tuple(sorted({f for e in table()["event_sources"].values() for r in e["rules"]
                         for f in _rule_fields(r)}))


def _rule_fields(rule: dict) -> set:
    return set(rule["vars"].values()) | {rule[k] for k in ("account", "unless") if k in rule}


@lru_cache(maxsize=1)
def getters() -> dict:
    """eventSource -> (fields, attrgetter returning their values as a tuple)."""
    out = {}
    for src, e in table()["event_sources"].items():
        fields = tuple(sorted({f for r in e["rules"] for f in _rule_fields(r)}))
        get = attrgetter(*fields)
        out[src] = (fields, get if len(fields) > 1 else (lambda p, g=get: (g(p),)))
    return out


def partition(region: str | None) -> str:
    r = region or ""
    if r.startswith("cn-"):
        return "aws-cn"
    if r.startswith("us-gov-"):
        return "aws-us-gov"
    if r.startswith("us-isob-"):
        return "aws-iso-b"
    if r.startswith("us-iso-"):
        return "aws-iso"
    return "aws"


def s3_prefix(key: str) -> str:
    """An object key as the prefix it lives under: `exports/2024/a.csv` -> `exports/*`, `a.csv` -> `*`."""
    head, sep, _ = key.partition("/")
    return f"{head}/*" if sep else "*"


def _collapse_s3(arn: str) -> str:
    head, sep, key = arn.partition(":::")
    bucket, slash, rest = key.partition("/")
    return f"{head}:::{bucket}/{s3_prefix(rest)}" if slash else arn


def _fill(fmt: str, values: dict) -> str | None:
    out = fmt
    for var in _VAR.findall(fmt):
        v = values.get(var)
        if not v:
            return None
        out = out.replace("${" + var + "}", v)
    return out


def _from_rule(rule: dict, get: dict, region: str | None, account: str | None) -> list[str]:
    fmt = table()["arn_formats"][rule["type"]]
    if "unless" in rule and get.get(rule["unless"]):
        return []
    acct = get.get(rule["account"]) if "account" in rule else None
    values = {"Partition": partition(region), "Region": region or "", "Account": acct or account or ""}
    out: list[str] = []
    for var, field in rule["vars"].items():
        v = get.get(field)
        if isinstance(v, (list, tuple)) and field == rule.get("arn"):
            return [a for item in v if isinstance(item, str)
                    for a in _from_rule({**rule, "vars": {var: "_one"}, "arn": "_one"}, {**get, "_one": item},
                                        region, account)]
        if not isinstance(v, str) or not v:
            return []
        if field == rule.get("arn") and v.startswith("arn:"):
            out.append(v)
            continue
        if "only_prefix" in rule and not v.startswith(rule["only_prefix"]):
            return []
        if "only_prefix" in rule:
            v = v[len(rule["only_prefix"]):]
        if "unless_prefix" in rule and v.startswith(rule["unless_prefix"]):
            return []
        if field == rule.get("queue_url"):
            parts = v.rstrip("/").split("/")
            if len(parts) < 2:
                return []
            values["Account"], v = parts[-2], parts[-1]
        if field == rule.get("prefix"):
            v = s3_prefix(v)
        if rule.get("strip"):
            v = v.lstrip("/")
        if rule["type"] == "lambda:function" and ":" in v:  # name:qualifier or account:function:name[:q]
            v = v.split(":function:", 1)[-1].split(":", 1)[0]
        if "suffix" in rule:
            v += rule["suffix"]
        values[var] = v
    if out:
        return out
    arn = _fill(fmt, values)
    return [arn] if arn else []


def candidates(source: str | None, region: str | None, account: str | None, values: tuple | None,
               found: tuple | None) -> tuple:
    """((type name or None, ARN), ...) for one record. `values`: the eventSource's request fields in
    `getters()[source][0]` order; `found`: ((ARN, CloudTrail type), ...) from `resources[]`."""
    out: dict = {}
    types = table()["resource_types"]
    for arn, ctype in found or ():
        if not isinstance(arn, str) or not arn.startswith("arn:"):
            continue
        qualified = types.get(ctype or "")
        if qualified == "s3:object" or (qualified is None and ":s3:::" in arn and "/" in arn):
            arn = _collapse_s3(arn)
        out[arn] = qualified.split(":", 1)[1] if qualified else None
    entry = table()["event_sources"].get(source or "")
    if entry and values is not None:
        get = dict(zip(getters()[source][0], values))
        for rule in entry["rules"]:
            for arn in _from_rule(rule, get, region, account):
                out.setdefault(arn, rule["type"].split(":", 1)[1])
    return tuple(sorted(((t, a) for a, t in out.items()), key=lambda ta: ta[1]))


# -- per action, in the parent -----------------------------------------------------------------------------

class ResourceFilter:
    """Which of a record's candidates belong to an action (its resource types), cached."""

    def __init__(self):
        self._cache: dict = {}

    def __call__(self, action: str, cands: tuple) -> tuple[str, ...]:
        key = (action, cands)
        hit = self._cache.get(key)
        if hit is None:
            types = action_resource_types(action) or {}
            hit = tuple(a for t, a in cands if t is not None and t.lower() in types) + tuple(
                a for t, a in cands if t is None and any(rx and rx.fullmatch(a) for rx in types.values()))
            if len(self._cache) < 200_000:
                self._cache[key] = hit
        return hit


def bounded(arns) -> tuple[tuple[str, ...], int, str | None]:
    """(the first BOUND ARNs in order, how many more, their common prefix when there are more)."""
    ordered = sorted(arns)
    if len(ordered) <= BOUND:
        return tuple(ordered), 0, None
    return tuple(ordered[:BOUND]), len(ordered) - BOUND, os.path.commonprefix(ordered)
