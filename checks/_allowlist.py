"""The config's allowlist applied to findings: what it covers is suppressed, and reported as such."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

from iamgate.config import Config
from iamgate.judge.risk import principal_names
from iamgate.model import Finding
from iamgate.reference.catalog import glob_match, load_catalog


def allowlisted(actions, entries) -> tuple[str, ...]:
    """The actions some entry's action glob covers: catalog sets, not a glob match per action
    (a NotAction principal has ~22,000)."""
    if not entries:
        return ()
    catalog = load_catalog()
    covered: set[str] = set()
    for e in entries:
        covered |= catalog.expand(e.action).actions
    return tuple(a for a in actions if a in covered or (a not in catalog and any(
        glob_match(e.action, a) for e in entries)))


def apply_allowlist(findings: list[Finding], results, config: Config, today: dt.date):
    if not config.allowlist:
        return findings, []
    names = {r.principal.id: principal_names(r) for r in results}
    active = [e for e in config.allowlist if not e.expired(today)]
    kept, suppressed = [], []
    for f in findings:
        if f.check == "allowlist-expired" or not f.actions:
            kept.append(f)
            continue
        ids = names.get(f.principal, (f.principal,))
        allowed = allowlisted(f.actions, [e for e in active if e.covers_principal(ids)])
        if f.combination:  # one subject: suppressed whole or kept whole, so its key stays stable
            (suppressed if len(allowed) == len(f.actions) else kept).append(f)
            continue
        if not allowed:
            kept.append(f)
            continue
        suppressed.append(replace(f, actions=allowed))
        rest = tuple(a for a in f.actions if a not in allowed)
        if rest:
            kept.append(replace(f, actions=rest))
    return kept, suppressed
