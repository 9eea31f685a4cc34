"""The machine contract: `iamgate.report/v1` (schema in iamgate/data/schemas/report.schema.json)."""
from __future__ import annotations

from ..judge.verdicts import VERDICTS
from ..model import Finding, PrincipalResult
from ..reference.catalog import sort_actions
from ..usage.history import observed_span
from . import FORMATS, Format, deployment_notes, grant_differs, judged_in, usage_warning, verdict

SCHEMA_ID = "iamgate.report/v1"


def _statement(st) -> dict:
    return {"sid": st.sid, "effect": st.effect, "actions": list(st.actions), "not_actions": list(st.not_actions),
            "resources": list(st.resources), "not_resources": list(st.not_resources),
            "condition": dict(st.condition), "line": st.location.line if st.location else None}


def _baseline(r: PrincipalResult, how: str | None) -> dict | None:
    b = r.baseline
    if b is None:
        return None
    signals: dict[str, int] = {}
    for action in r.actions("used"):
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


def principal_dict(r: PrincipalResult, how: str | None = None, report=None) -> dict:
    p = r.principal
    actions = {"granted": sort_actions(r.granted)}
    for v in VERDICTS:
        actions[v.replace("-", "_")] = r.actions(v)
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
        "actions": actions,
        "reasons": {v: {reason: sort_actions(acts) for reason, acts in r.groups[v].items()}
                    for v in ("unused", "unobservable", "unknown", "too_recent", "new") if v in r.groups},
        "deployments": [_deployment(d) for d in r.deployments],
        "used_in": [{"deployments": list(names), "actions": sort_actions(acts)}
                    for names, acts in sorted(r.used_in.items())],
        "history": None if r.history is None else {"known": r.history.known, "note": r.history.note},
        "notes": list(r.notes) + [f"{note}: {', '.join(sorted(acts)[:10])}{' …' if len(acts) > 10 else ''}"
                                  for acts, note in r.action_notes],
    }


def finding_dict(f: Finding, new: bool | None = None) -> dict:
    d = {"check": f.check, "severity": f.severity, "principal": f.principal, "actions": list(f.actions),
         "file": f.location.file if f.location else None, "line": f.location.line if f.location else None,
         "message": f.message, "reason": f.reason}
    if f.resources:
        d["resources"] = list(f.resources)
    if new is not None:
        d["new"] = new
    return d


def report_dict(report) -> dict:
    diff = report.new_keys is not None
    return {
        "schema": SCHEMA_ID,
        "catalog": report.catalog,
        "support_data": dict(report.support_data),
        "managed_policy_bundle": dict(report.managed_bundle) or None,
        "gate": {"fail_on": report.fail_on, "result": report.result, "decided": report.decided,
                 "summary": verdict(report), "failing": len(report.failing), "exit_code": report.exit_code,
                 "diff_only": diff, "unreadable": report.unreadable, "judged": report.judged,
                 "nothing_judged": report.nothing_judged, "require_usage_data": report.require_usage_data,
                 "require_all_deployments": report.require_all_deployments},
        "principals": [principal_dict(r, report.matched_by.get(r.principal.id), report) for r in report.results],
        "findings": [finding_dict(f, report.is_new(f) if diff else None) for f in report.findings],
        "suppressed": [finding_dict(f) for f in report.suppressed],
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


@FORMATS.register
class JsonFormat(Format):
    name = "json"
    description = "the iamgate.report/v1 contract"

    def render(self, report) -> str:
        import msgspec  # json's own encoder is pure Python once it indents: 10x slower on big reports
        return msgspec.json.format(msgspec.json.encode(report_dict(report)), indent=2).decode() + "\n"
