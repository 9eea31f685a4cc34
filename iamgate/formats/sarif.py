"""SARIF 2.1.0 for code scanning: one rule per check with `security-severity`, repo-relative URIs,
a fingerprint from the finding key, and `baselineState` new/unchanged in diff mode."""
from __future__ import annotations

import hashlib
import json
import urllib.parse

from .. import __version__
from ..escape import plain
from ..model import Finding, Location, severity_rank
from ..reference.catalog import action_names
from ..repo import repo_relative, repo_root
from . import (
    FORMATS,
    Format,
    deployment_notes,
    grant_differs,
    history_note,
    judged_in,
    unreadable,
    usage_warning,
    verdict,
    verdict_lines,
)

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
# GitHub's bands: critical > 9.0, high 7.0-8.9, medium 4.0-6.9, low 0.1-3.9.
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.1"}
MAX_ACTIONS_IN_MESSAGE = 40


def finding_fingerprint(f: Finding, report=None) -> str:
    """Stable across line moves: a hash of the finding's keys (in the report's stable form), never
    of its location."""
    keys = sorted(json.dumps(list(k), default=list) for k in (report.stable_keys(f) if report else f.keys()))
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def level(severity: str, fail_on: str) -> str:
    if fail_on != "never" and severity_rank(severity) >= severity_rank(fail_on):
        return "error"
    return "warning" if severity_rank(severity) >= severity_rank("medium") else "note"


def artifact_location(loc: Location, root) -> dict:
    region = {"region": {"startLine": loc.line}} if loc.line else {}
    uri = urllib.parse.quote(repo_relative(loc.file, root))
    return {"physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"}, **region}}


def message_text(f: Finding) -> str:
    text = plain(f"{f.principal}: {f.message}")
    if f.actions:
        shown = ", ".join(action_names(f.actions[:MAX_ACTIONS_IN_MESSAGE]))
        more = len(f.actions) - MAX_ACTIONS_IN_MESSAGE
        text += f": {plain(shown)}" + (f" and {more} more" if more > 0 else "")
    return text


def sarif_log(report) -> dict:
    from iamgate.checks import CHECKS
    root = repo_root()
    checks = CHECKS.all()
    names = sorted(set(checks) | {f.check for f in report.findings})
    rules = []
    for name in names:
        cls = checks.get(name)
        severity = getattr(cls, "severity", "info")
        rules.append({
            "id": name,
            "name": "".join(part.capitalize() for part in name.split("-")),
            "shortDescription": {"text": getattr(cls, "title", name)},
            "fullDescription": {"text": getattr(cls, "docs", "") or getattr(cls, "title", name)},
            "help": {"text": getattr(cls, "docs", "") or name},
            "defaultConfiguration": {"level": level(severity, report.fail_on)},
            "properties": {"security-severity": SECURITY_SEVERITY[severity], "tags": ["security", "iam"],
                           "precision": "high"},
        })
    index = {name: i for i, name in enumerate(names)}
    diff = report.new_keys is not None
    results = []
    where = {r.principal.id: judged_in(r) for r in report.results}
    for f in report.findings:
        result = {
            "ruleId": f.check, "ruleIndex": index[f.check], "level": level(f.severity, report.fail_on),
            "message": {"text": message_text(f)},
            "partialFingerprints": {"iamgateFindingKey/v1": finding_fingerprint(f, report)},
            "properties": {"severity": f.severity, "security-severity": SECURITY_SEVERITY[f.severity],
                           "principal": f.principal, "actions": list(f.actions)},
        }
        if where.get(f.principal):
            result["properties"]["deployments"] = where[f.principal]
            result["message"]["text"] += f" ({plain(where[f.principal])})"
        if f.location:
            result["locations"] = [artifact_location(f.location, root)]
        if diff:
            result["baselineState"] = "new" if report.is_new(f) else "unchanged"
        results.append(result)
    notifications = [{"level": "error", "message": {"text": plain(e.message)},
                      "locations": [artifact_location(Location(e.file, e.line), root)]} for e in report.errors]
    notifications += [{"level": "warning", "message": {"text": plain(f"not read: {s.reason}")},
                       "locations": [artifact_location(Location(s.file), root)]} for s in report.skipped]
    notifications += [{"level": "warning", "message": {"text": plain(n)}}
                      for n in getattr(report, "history_notes", ())]
    for r in report.results:  # beside the findings: grant age unknown, too recent to judge, where judged
        pid = r.principal.id
        note = history_note(r)
        if note:
            notifications.append({"level": "warning", "message": {"text": plain(f"{pid}: {note}")}})
        notifications += [{"level": "note", "message": {"text": plain(f"{pid}: {line}")}}
                          for line in verdict_lines(r, action_names)
                          + [f"the grant differs: {d}" for d in grant_differs(report, pid)]]
    warning = usage_warning(report)
    if warning:
        notifications.append({"level": "warning", "message": {"text": warning}})
    notifications += [{"level": "warning", "message": {"text": plain(n)}} for n in deployment_notes(report)]
    if report.result == "error":
        notifications.append({"level": "error", "message": {"text": unreadable(report)}})
    run = {
        "tool": {"driver": {"name": "iamgate", "version": __version__, "semanticVersion": __version__,
                            "rules": rules}},
        "results": results,
        "invocations": [{"executionSuccessful": not report.errors, "toolExecutionNotifications": notifications}],
        "columnKind": "unicodeCodePoints",
        "properties": {"catalog": dict(report.catalog), "fail_on": report.fail_on,
                       "result": report.result, "summary": verdict(report), "judged": report.judged,
                       "nothing_judged": report.nothing_judged, "skipped": len(report.skipped),
                       "support_data": dict(report.support_data),
                       "managed_policy_bundle": dict(report.managed_bundle) or None,
                       "deployments": {pid: text for pid, text in where.items() if text}},
    }
    if getattr(report, "comparison", None) is not None:
        run["properties"]["diff_base"] = report.comparison.commit
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


@FORMATS.register
class SarifFormat(Format):
    name = "sarif"
    description = "SARIF 2.1.0 for GitHub code scanning"

    def render(self, report) -> str:
        return json.dumps(sarif_log(report), indent=2) + "\n"
