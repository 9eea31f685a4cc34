"""The machine contract: `iamgate.report/v2` (schema in iamgate/data/schemas/report.schema.json), and
`iamgate.report/v1` (report.v1.schema.json) behind `--json-version 1` for one release.

v2 names every action once, in the report's `actions` table (sorted, lowercase); a principal's `verdicts`
map each verdict to its reasons and each reason to indices into that table, so every granted action appears
exactly once, with its verdict and reason. Findings list their actions as indices too. v1 listed every
granted action two or three times by name (`granted`, its verdict list, its reason), which made a report of
1,000 roles with `NotAction` grants 580 MB.
"""
from __future__ import annotations

from itertools import compress, repeat
from operator import contains, itemgetter

from ..judge.verdicts import VERDICTS
from ..model import UNKNOWN, Finding, PrincipalResult
from ..reference.catalog import derivation, drop_sorted, sort_actions
from ..usage.history import observed_span
from . import FORMATS, Format, deployment_notes, grant_differs, judged_in, usage_warning, verdict

SCHEMA_ID = "iamgate.report/v1"
SCHEMA_V2 = "iamgate.report/v2"
VERSIONS = (1, 2)
DEFAULT_VERSION = 2


def _statement(st) -> dict:
    return {"sid": st.sid, "effect": st.effect, "actions": list(st.actions), "not_actions": list(st.not_actions),
            "resources": list(st.resources), "not_resources": list(st.not_resources),
            "condition": dict(st.condition), "line": st.location.line if st.location else None}


def _baseline(r: PrincipalResult, how: str | None) -> dict | None:
    b = r.baseline
    if b is None:
        return None
    signals: dict[str, int] = {}
    for action in (a for acts in r.groups.get("used", {}).values() for a in acts):  # counted: no need to sort
        u = b.used.get(action)  # absent: judged used from what an unused-access analyzer did not report
        for s in (u.signals if u else ("unused-access",)) or ("baseline",):
            signals[s] = signals.get(s, 0) + 1
    return {"source": b.files[0] if len(b.files) == 1 else list(b.files), "principal_arn": b.principal_arn,
            "start": b.window_start, "end": b.window_end, "complete": b.complete,
            "observed": observed_span(b),  # what its sources watched: first, last day, days, gaps (issue 22)
            "sources": [dict(s) for s in b.sources], "matched_by": how, "used_by_signal": signals,
            "decided_by": {v: {reason: len(acts) for reason, acts in reasons.items()}
                           for v, reasons in r.groups.items()}}


def _deployment(d) -> dict:
    b = d.baseline
    return {"name": d.name, "account": d.account, "baseline": b.principal_arn if b else None,
            "source": (b.files[0] if len(b.files) == 1 else list(b.files)) if b else None,
            "matched_by": d.matched_by, "own_grant": d.principal is not None}


def _principal(r: PrincipalResult, how: str | None, report=None) -> dict:
    """What v1 and v2 share: everything but the action lists."""
    p = r.principal
    return {
        "id": p.id, "name": p.display_name, "kind": p.kind, "source": p.source,
        "file": p.location.file if p.location else None, "line": p.location.line if p.location else None,
        "arn": p.arn or (r.baseline.principal_arn if r.baseline else None),
        "name_is_prefix": p.name_is_prefix, "aliases": list(p.aliases),
        "policies": [{"name": pol.name, "file": pol.location.file if pol.location else None,
                      "line": pol.location.line if pol.location else None, "managed_arn": pol.managed_arn,
                      "statements": [_statement(s) for s in pol.statements]} for pol in p.policies],
        "baseline": _baseline(r, how),
        "judged_in": judged_in(r),
        "grant_differs": grant_differs(report, p.id) if report is not None else [],
        "judged": r.judged.as_dict(),
        "deployments": [_deployment(d) for d in r.deployments],
        "history": None if r.history is None else {"known": r.history.known, "note": r.history.note},
        "notes": list(r.notes) + [f"{note}: {', '.join(sorted(acts)[:10])}{' …' if len(acts) > 10 else ''}"
                                  for acts, note in r.action_notes],
    }


def principal_dict(r: PrincipalResult, how: str | None = None, report=None) -> dict:
    """A principal in v1: `granted`, then every action again in its verdict list and its reason."""
    out = _principal(r, how, report)
    actions = {"granted": sort_actions(r.granted)}
    for v in VERDICTS:
        actions[v.replace("-", "_")] = r.actions(v)
    out["actions"] = actions
    out["reasons"] = {v: {reason: sort_actions(acts) for reason, acts in r.groups[v].items()}
                      for v in ("unused", "unobservable", "unknown", "too_recent", "new") if v in r.groups}
    out["used_in"] = [{"deployments": list(names), "actions": sort_actions(acts)}
                      for names, acts in sorted(r.used_in.items())]
    return out


def finding_dict(f: Finding, new: bool | None = None) -> dict:
    d = {"check": f.check, "severity": f.severity, "principal": f.principal, "actions": list(f.actions),
         "file": f.location.file if f.location else None, "line": f.location.line if f.location else None,
         "message": f.message, "reason": f.reason}
    if f.resources:
        d["resources"] = list(f.resources)
    if new is not None:
        d["new"] = new
    return d


def _report(report, principals: list, findings: list, suppressed: list, head: dict) -> dict:
    diff = report.new_keys is not None
    return {
        **head,
        "catalog": report.catalog,
        "support_data": dict(report.support_data),
        "managed_policy_bundle": dict(report.managed_bundle) or None,
        "gate": {"fail_on": report.fail_on, "result": report.result, "decided": report.decided,
                 "summary": verdict(report), "failing": len(report.failing), "exit_code": report.exit_code,
                 "diff_only": diff, "unreadable": report.unreadable, "judged": report.judged,
                 "nothing_judged": report.nothing_judged, "require_usage_data": report.require_usage_data,
                 "require_all_deployments": report.require_all_deployments},
        "principals": principals,
        "findings": findings,
        "suppressed": suppressed,
        "unresolved": [{"file": u.location.file, "line": u.location.line, "principal": u.principal_id,
                        "message": u.message, "grant": u.grant} for u in report.unresolved],
        "unmatched_baselines": list(report.unmatched_baselines),
        "deployment_notes": deployment_notes(report),
        "missing_deployments": [{"principal": pid, "deployment": name, "account": account}
                                for pid, name, account in report.missing_deployments],
        "notes": list(report.notes) + list(getattr(report, "history_notes", ())) +
                 ([usage_warning(report)] if report.nothing_judged else []),
        "skipped": [s.as_dict() for s in report.skipped],
        "errors": [e.as_dict() for e in report.errors],
    }


def report_dict(report) -> dict:
    """The report in v1 (`--json-version 1`)."""
    diff = report.new_keys is not None
    return _report(report, [principal_dict(r, report.matched_by.get(r.principal.id), report) for r in report.results],
                   [finding_dict(f, report.is_new(f) if diff else None) for f in report.findings],
                   [finding_dict(f) for f in report.suppressed], {"schema": SCHEMA_ID})


def verdict_key(v: str) -> str:
    """The JSON key of a verdict: `no-usage-data` -> `no_usage_data`; `new`, `too_recent` as they are."""
    return v.replace("-", "_")


def _table(report) -> list[str]:
    """Every action the report names, once, sorted: the table v2's indices point into."""
    names: set[str] = set()
    for granted in {id(r.granted): r.granted for r in report.results}.values():  # a NotAction grant's is shared
        names |= granted
    within: dict[tuple[int, int], tuple] = {}  # principals share large sets: each (set, grant) checked once

    def inside(acts: frozenset, granted: frozenset) -> bool:
        if acts is granted or len(acts) < 64:
            return acts is granted or acts <= granted
        known = derivation(acts)  # a shared set less a few is inside where the shared one is
        whole = known[0] if known is not None else acts
        hit = within.get((id(whole), id(granted)))
        if hit is None:
            hit = within[(id(whole), id(granted))] = (whole, granted, whole <= granted)  # both kept alive
        return hit[2]

    for r in report.results:
        for v, reasons in r.groups.items():
            for acts in reasons.values():
                if v == UNKNOWN or not inside(acts, r.granted):  # the other verdicts split the granted actions
                    names |= acts
    for acts in {f.actions for f in (*report.findings, *report.suppressed)}:  # findings on shared sets repeat lists
        names.update(acts)
    for r in report.results:
        for acts in r.used_in.values():
            names |= acts
    return sorted(names)


def report_dict_v2(report) -> dict:
    """The report in v2: one table of action names, indices everywhere else."""
    table = _table(report)
    index = {a: i for i, a in enumerate(table)}
    ids = index.__getitem__
    every = range(len(table))
    seen: dict[frozenset, list[int]] = {}  # principals with the same NotAction grant often share whole sets

    def indices(acts: frozenset) -> list[int]:
        """Sorted indices; a large set (a NotAction grant's) is picked from the sorted table, faster than sorting."""
        if len(acts) < 64:
            return sorted(map(ids, acts))
        known = derivation(acts)
        if known is not None:  # a shared set less a few actions (`catalog.less`): those few dropped from its list
            return drop_sorted(indices(known[0]), {index[a] for a in known[1] if a in index})
        hit = seen.get(acts)  # principals share the sets of a large grant's split (the same objects: no compare)
        if hit is None:  # map(contains, ...): 3x faster than map(acts.__contains__, ...)
            hit = seen[acts] = (list(compress(every, map(contains, repeat(acts), table))) if len(acts) * 8 >= len(table)
                                else sorted(map(ids, acts)))
        return hit

    def principal(r: PrincipalResult) -> dict:
        out = _principal(r, report.matched_by.get(r.principal.id), report)
        if out["baseline"] is not None:
            del out["baseline"]["decided_by"]  # counts of what `verdicts` lists
        out["verdicts"] = {verdict_key(v): {reason: indices(acts) for reason, acts in reasons.items()}
                           for v, reasons in r.groups.items() if reasons}
        out["used_in"] = [{"deployments": list(names), "actions": indices(acts)}
                          for names, acts in sorted(r.used_in.items())]
        return out

    listed: dict[tuple, list[int]] = {}  # findings on the same large grant list the same actions

    def finding(f: Finding, new: bool | None = None) -> dict:
        d = finding_dict(f, new)
        acts = f.actions
        if len(acts) < 64:
            d["actions"] = list(map(ids, acts))
        else:
            hit = d["actions"] = listed.get(acts)
            if hit is None:
                d["actions"] = listed[acts] = list(itemgetter(*acts)(index))
        return d

    diff = report.new_keys is not None
    return _report(report, [principal(r) for r in report.results],
                   [finding(f, report.is_new(f) if diff else None) for f in report.findings],
                   [finding(f) for f in report.suppressed], {"schema": SCHEMA_V2, "actions": table})


def expanded(doc: dict) -> dict:
    """A v2 report read back with action names in place of indices, in v1's shape: each principal's
    `actions` (`granted` and one sorted list per verdict) and `reasons` (verdict -> reason -> actions),
    findings' `actions` as names. For consumers migrating from v1, and for checking what v2 holds.
    A v1 report is returned as it is."""
    if doc.get("schema") != SCHEMA_V2:
        return doc
    table = doc["actions"]
    out = dict(doc)
    principals = []
    for p in doc["principals"]:
        p = dict(p)
        reasons = {v: {reason: sorted(table[i] for i in idx) for reason, idx in rs.items()}
                   for v, rs in p["verdicts"].items()}
        actions = {v: sorted(a for acts in rs.values() for a in acts) for v, rs in reasons.items()}
        for v in VERDICTS:
            actions.setdefault(verdict_key(v), [])
        actions["granted"] = sorted(a for v, acts in actions.items() if v != "unknown" for a in acts)
        p["actions"], p["reasons"] = actions, reasons
        if "used_in" in p:
            p["used_in"] = [{**u, "actions": [table[i] for i in u["actions"]]} for u in p["used_in"]]
        principals.append(p)
    out["principals"] = principals
    for key in ("findings", "suppressed"):
        out[key] = [{**f, "actions": [table[i] for i in f["actions"]]} for f in doc.get(key, [])]
    return out


def verdicts_by_action(doc: dict) -> dict[str, dict[str, tuple[str, str]]]:
    """principal id -> action -> (verdict, reason), from a v2 report (verdicts as the judge names them:
    `no-usage-data`)."""
    table = doc["actions"]
    names = {verdict_key(v): v for v in VERDICTS}
    return {p["id"]: {table[i]: (names.get(v, v), reason) for v, rs in p["verdicts"].items()
                      for reason, idx in rs.items() for i in idx} for p in doc["principals"]}


def _v2_text(doc: dict) -> str:
    """v2 as text: one line per top-level key, per principal and per finding (an indented list of tens of
    thousands of indices would be one line per number), compact within them."""
    import msgspec  # json's own encoder is pure Python once it indents: 10x slower on big reports
    enc = msgspec.json.encode
    chunks = [b"{\n  "]  # joined once: a report of tens of MB is copied once, not per level of nesting
    for n, (key, value) in enumerate(doc.items()):
        chunks += (b",\n  ", enc(key)) if n else (enc(key),)
        if isinstance(value, list) and value and key != "actions":
            chunks.append(b": [\n    ")
            for i, item in enumerate(map(enc, value)):
                chunks += (b",\n    ", item) if i else (item,)
            chunks.append(b"\n  ]")
        else:
            chunks += (b": ", enc(value))
    chunks.append(b"\n}\n")
    return b"".join(chunks).decode()


@FORMATS.register
class JsonFormat(Format):
    name = "json"
    description = "the iamgate.report/v2 contract (v1 with --json-version 1)"

    def __init__(self, color: bool = False, version: int = DEFAULT_VERSION):
        super().__init__(color)
        if version not in VERSIONS:
            raise ValueError(f"JSON report version {version}: iamgate writes {' and '.join(map(str, VERSIONS))}")
        self.version = version

    def render(self, report) -> str:
        if self.version == 2:
            return _v2_text(report_dict_v2(report))
        import msgspec
        return msgspec.json.format(msgspec.json.encode(report_dict(report)), indent=2).decode() + "\n"
