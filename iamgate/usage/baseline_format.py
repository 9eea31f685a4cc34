"""The one baseline format (`iamgate.baseline/v1`): read, normalise, merge and write.

Access Analyzer's raw `get-generated-policy` output is accepted too and normalised on load.
`iamgate.baseline/v2` is v1 plus an `unused_access` section (what an unused-access analyzer
reported, and the deployed grant it judged). Only such baselines are written as v2: a v1 reader
would take their empty `used` for "nothing used" and call the whole grant unused, so it must
reject them instead. Both versions are read.
`iamgate.baseline/v3` is a baseline with history (issue 22, `iamgate.usage.history`): per action
`first_seen` and `by_source.<kind>: {count, first_seen, last_seen}`, and top-level `coverage: {kind:
[{start, end}]}`, the intervals each source watched. An older iamgate would take its window for one
continuous watch (a gap in coverage would count as watched), so history is written as v3, which older
versions reject. v1, v2 and v3 are read.
"""
from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..files import write_json_atomic
from ..model import Baseline, Interval, SourceUse, UnusedAccessEvidence, UsedAction

SCHEMA_ID = "iamgate.baseline/v1"
SCHEMA_V2 = "iamgate.baseline/v2"
SCHEMA_V3 = "iamgate.baseline/v3"
SCHEMAS = (SCHEMA_ID, SCHEMA_V2, SCHEMA_V3)


class BaselineError(Exception):
    pass


@lru_cache(maxsize=1)
def _validator():
    import jsonschema  # imported when a v1 baseline is read: it costs a tenth of a second
    schema = json.loads(resources.files("iamgate").joinpath("data/schemas/baseline.schema.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def is_generated_policy(data) -> bool:
    return isinstance(data, dict) and "generatedPolicyResult" in data


def from_generated_policy(data: dict, file: str = "") -> Baseline:
    """Normalise `aws accessanalyzer get-generated-policy` output."""
    result = data.get("generatedPolicyResult") or {}
    props = result.get("properties") or {}
    arn = props.get("principalArn")
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        raise BaselineError("generatedPolicyResult.properties.principalArn is missing")
    ct = props.get("cloudTrailProperties") or {}
    job = data.get("jobDetails") or {}
    trails = [t.get("cloudTrailArn") for t in ct.get("trailProperties") or [] if isinstance(t, dict)]
    used: dict[str, UsedAction] = {}
    service_level: set[str] = set()
    for i, gp in enumerate(result.get("generatedPolicies") or []):
        text = gp.get("policy") if isinstance(gp, dict) else None
        try:
            doc = json.loads(text) if isinstance(text, str) else text
        except ValueError as e:
            raise BaselineError(f"generatedPolicies[{i}].policy is not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise BaselineError(f"generatedPolicies[{i}].policy is not a policy document")
        stmts = doc.get("Statement") or []
        for st in stmts if isinstance(stmts, list) else [stmts]:
            if not isinstance(st, dict) or st.get("Effect", "Allow") != "Allow":
                continue
            acts = st.get("Action") or []
            for a in acts if isinstance(acts, list) else [acts]:
                if not isinstance(a, str) or ":" not in a:
                    continue
                a = a.lower()
                service, _, name = a.partition(":")
                if "*" in name or "?" in name:
                    service_level.add(service)  # generation saw the service, not which actions
                    continue
                used[a] = UsedAction(signals=("access-analyzer",))
    source = {"kind": "access-analyzer", "job_id": job.get("jobId"), "trail": trails[0] if len(trails) == 1 else trails,
              "complete": bool(props.get("isComplete", False)), "generated_at": job.get("completedOn")}
    return Baseline(principal_arn=arn, window_start=ct.get("startTime"), window_end=ct.get("endTime"),
                    sources=(source,), used=used, service_level_only=frozenset(service_level), files=(file,))


def from_v1(data: dict, file: str = "") -> Baseline:
    from jsonschema.exceptions import best_match
    error = best_match(_validator().iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise BaselineError(f"not a valid {data.get('schema', SCHEMA_ID)} baseline at {where}: {error.message}")
    window = data.get("window") or {}
    used = {k.lower(): UsedAction(count=v.get("count"), last_seen=v.get("last_seen"),
                                  signals=tuple(v.get("signals") or ()), first_seen=v.get("first_seen"),
                                  by_source={kind: SourceUse(s.get("count"), s.get("first_seen"), s.get("last_seen"))
                                             for kind, s in (v.get("by_source") or {}).items()},
                                  resources=tuple(v.get("resources") or ()),
                                  resources_more=v.get("resources_more") or 0,
                                  resources_prefix=v.get("resources_prefix"))
            for k, v in (data.get("used") or {}).items()}
    coverage = {kind: tuple(Interval(i["start"], i["end"]) for i in spans)
                for kind, spans in (data.get("coverage") or {}).items()}
    return Baseline(
        principal_arn=data["principal_arn"], window_start=window.get("start"), window_end=window.get("end"),
        sources=tuple(data.get("sources") or ()), used=used,
        service_level_only=frozenset(s.lower() for s in data.get("service_level_only") or ()),
        not_accessed_services=frozenset(s.lower() for s in data.get("not_accessed_services") or ()),
        data_events_observed=frozenset(s.lower() for s in data.get("data_events_observed") or ()),
        denied={k.lower(): v for k, v in (data.get("denied") or {}).items()}, files=(file,), coverage=coverage,
        unused_access=evidence_from_json(data["unused_access"]) if data.get("unused_access") else None,
        deployment=data.get("deployment"))


def evidence_from_json(d: dict) -> UnusedAccessEvidence:
    policies = d.get("deployed_grant", {}).get("policies") if d.get("deployed_grant") else None
    return UnusedAccessEvidence(
        analyzer=d["analyzer"], tracking_days=d["tracking_period_days"], analyzed_at=d.get("analyzed_at"),
        not_analysed=d.get("not_analysed") or "", unused_role=bool(d.get("unused_role")),
        unused_actions={k.lower(): (v or {}).get("last_accessed") for k, v in (d.get("unused_actions") or {}).items()},
        unused_services={k.lower(): (v or {}).get("last_accessed")
                         for k, v in (d.get("unused_services") or {}).items()},
        deployed_policies=tuple(policies) if policies is not None else None,
        recommendation=d.get("recommendation"), findings=tuple(d.get("findings") or ()))


def evidence_to_json(e: UnusedAccessEvidence) -> dict:
    def stamps(m):
        return {k: ({"last_accessed": v} if v else {}) for k, v in sorted(m.items())}
    return {"analyzer": e.analyzer, "tracking_period_days": e.tracking_days, "analyzed_at": e.analyzed_at,
            **({"not_analysed": e.not_analysed} if e.not_analysed else {}), "unused_role": e.unused_role,
            "unused_actions": stamps(e.unused_actions), "unused_services": stamps(e.unused_services),
            "deployed_grant": None if e.deployed_policies is None else {
                "policies": [dict(p) for p in e.deployed_policies]},
            "recommendation": dict(e.recommendation) if e.recommendation else None,
            "findings": [dict(f) for f in e.findings]}


def parse(data, file: str = "") -> Baseline:
    if is_generated_policy(data):
        return from_generated_policy(data, file)
    if isinstance(data, dict) and data.get("schema") in SCHEMAS:
        return from_v1(data, file)
    raise BaselineError(f"neither a {SCHEMA_ID} (or v2, v3) baseline nor Access Analyzer get-generated-policy output")


def load(path: str | Path) -> Baseline:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise BaselineError(f"invalid JSON: {e}") from None
    except OSError as e:
        raise BaselineError(f"cannot read: {e.strerror}") from None
    return parse(data, path.as_posix())


def _history(u: UsedAction) -> dict:
    """An action's history fields (v3), where it has them."""
    out: dict = {"first_seen": u.first_seen} if u.first_seen else {}
    if u.by_source:
        out["by_source"] = {kind: {k: v for k, v in (("count", s.count), ("first_seen", s.first_seen),
                                                     ("last_seen", s.last_seen)) if v is not None}
                            for kind, s in sorted(u.by_source.items())}
    return out


def has_history(b: Baseline) -> bool:
    return bool(b.coverage) or any(u.by_source or u.first_seen for u in b.used.values())


def to_v1(b: Baseline) -> dict:
    """The stored form: v1; v2 when the baseline carries an unused-access section; v3 with history."""
    extra = {"unused_access": evidence_to_json(b.unused_access)} if b.unused_access is not None else {}
    if b.coverage:
        extra["coverage"] = {kind: [{"start": i.start, "end": i.end} for i in spans]
                             for kind, spans in sorted(b.coverage.items())}
    return {
        "schema": SCHEMA_V3 if has_history(b) else SCHEMA_V2 if b.unused_access is not None else SCHEMA_ID,
        "principal_arn": b.principal_arn,
        **({"deployment": b.deployment} if b.deployment else {}),
        "window": {"start": b.window_start, "end": b.window_end},
        "sources": [dict(s) for s in b.sources],
        "used": {a: {k: v for k, v in (("count", u.count), ("last_seen", u.last_seen),
                                        ("signals", list(u.signals)), ("resources", list(u.resources)),
                                        ("resources_more", u.resources_more or None),
                                        ("resources_prefix", u.resources_prefix)) if v not in (None, [])} | _history(u)
                 for a, u in sorted(b.used.items())},
        "service_level_only": sorted(b.service_level_only),
        "not_accessed_services": sorted(b.not_accessed_services),
        "data_events_observed": sorted(b.data_events_observed),
        "denied": {a: dict(v) for a, v in sorted(b.denied.items())},
        **extra,
    }


def write(b: Baseline, path: str | Path) -> None:
    """Atomically: a killed run never leaves a half-written baseline."""
    write_json_atomic(Path(path), to_v1(b))


def _later(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _coverage(baselines: list[Baseline]) -> dict:
    """The sources' intervals; where some baselines have coverage, the others' windows count as theirs."""
    if not any(b.coverage for b in baselines):
        return {}
    spans: dict[str, set] = {}
    for b in baselines:
        own = b.coverage or ({k: (Interval(b.window_start, b.window_end),) for k in b.source_kinds}
                             if b.window_start and b.window_end else {})
        for kind, intervals in own.items():
            spans.setdefault(kind, set()).update(intervals)
    return {kind: tuple(sorted(v, key=lambda i: (i.start, i.end))) for kind, v in sorted(spans.items())}


def has_resources(u: UsedAction) -> bool:
    return bool(u.resources or u.resources_more)


def merge_resources(a: UsedAction, b: UsedAction) -> UsedAction:
    """`a` with the union of both's resources. A CloudTrail record of the action without them (its signals
    say cloudtrail, it has none) makes the union unknown; a source that never gives resources (policy
    generation, last accessed) leaves the other's."""
    if not has_resources(b):
        return a if "cloudtrail" not in b.signals else replace(a, resources=(), resources_more=0,
                                                               resources_prefix=None)
    if not has_resources(a):
        return replace(a, resources=b.resources, resources_more=b.resources_more,
                       resources_prefix=b.resources_prefix) if "cloudtrail" not in a.signals else a
    from ._ct_res import BOUND, bounded
    arns, more, prefix = bounded(set(a.resources) | set(b.resources))
    extra = a.resources_more + b.resources_more
    if extra:  # past the bound on either side: the count adds up, the prefix is common to both
        import os
        prefix = os.path.commonprefix([p for p in (a.resources_prefix, b.resources_prefix, prefix,
                                                   os.path.commonprefix(list(arns))) if p])
        more += extra
    return replace(a, resources=arns[:BOUND], resources_more=more, resources_prefix=prefix)


def merge(baselines: list[Baseline]) -> Baseline:
    """Several sources for one principal: used and observability are unions."""
    if len(baselines) == 1:
        return baselines[0]
    used: dict[str, UsedAction] = {}
    denied: dict[str, dict] = {}
    for b in baselines:
        for a, u in b.used.items():
            prev = used.get(a)
            if prev is None:
                used[a] = u
            else:
                count = None if prev.count is None and u.count is None else (prev.count or 0) + (u.count or 0)
                firsts = [t for t in (prev.first_seen, u.first_seen) if t]
                used[a] = replace(merge_resources(prev, u), count=count, last_seen=_later(prev.last_seen, u.last_seen),
                                  signals=tuple(dict.fromkeys(prev.signals + u.signals)),
                                  first_seen=min(firsts) if firsts else None,
                                  by_source={**prev.by_source, **u.by_source})
        for a, d in b.denied.items():
            prev_d = denied.get(a, {})
            denied[a] = {"count": (prev_d.get("count") or 0) + (d.get("count") or 0),
                         "last_seen": _later(prev_d.get("last_seen"), d.get("last_seen"))}
    starts = [b.window_start for b in baselines if b.window_start]
    ends = [b.window_end for b in baselines if b.window_end]
    sources = tuple(s for b in baselines for s in b.sources)
    action_level_everywhere = any(s.get("kind") == "cloudtrail" for s in sources)
    service_level = set().union(*(b.service_level_only for b in baselines))
    if action_level_everywhere:
        service_level = set()
    merged = replace(
        baselines[0], deployment=next((b.deployment for b in baselines if b.deployment), None), window_start=min(starts) if starts else None, window_end=max(ends) if ends else None,
        sources=sources, used=used, service_level_only=frozenset(service_level),
        not_accessed_services=frozenset().union(*(b.not_accessed_services for b in baselines)) - {
            a.partition(":")[0] for a in used},
        data_events_observed=frozenset().union(*(b.data_events_observed for b in baselines)),
        denied=denied, files=tuple(f for b in baselines for f in b.files),
        coverage=_coverage(baselines),
        unused_access=max((b.unused_access for b in baselines if b.unused_access is not None),  # the latest
                          key=lambda e: e.analyzed_at or "", default=None))
    return merged
