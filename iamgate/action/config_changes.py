"""What a pull request changes in the gate's own configuration, and which of it weakens the gate.

The base commit's configuration is the one in force; the PR's only applies after the merge. So a
PR that turns a check off, lowers a severity, raises `fail-on`, widens the allowlist or declares
actions unobservable is still judged by the base's rules, and the comment lists each change, so
the reviewers see what the merge would switch off.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import DURATIONS, AllowEntry, Config
from ..escape import clip, code, md, terminal
from ..model import SEVERITIES
from ..reference.catalog import Catalog, glob_match

MAX_LISTED = 50
MAX_TEXT = 200  # characters of one subject or detail: the PR writes them, the comment has a limit


@dataclass(frozen=True)
class Weakening:
    kind: str  # check-disabled | severity-lowered | fail-on-raised | allowlist-added | allowlist-widened
    #            | unobservable-added | require-usage-data-off | data-changed | principal-mapped
    #            | parameter-changed | data-path-changed | trusted-module-added | time-rule-raised
    #            | deployment-changed | exclude-added
    subject: str  # the check id, the entry, the pattern, the file
    detail: str = ""  # plain text: before -> after


def _rank(severity: str) -> int:
    return len(SEVERITIES) if severity == "never" else SEVERITIES.index(severity)


def _default_severities() -> dict[str, str]:
    from iamgate.checks import CHECKS
    return {name: cls.severity for name, cls in CHECKS.all().items()}


def _pattern_actions(catalog: Catalog, patterns) -> frozenset[str]:
    return catalog.expand_all(list(patterns)).actions if patterns else frozenset()


def _covers_text(outer: str, inner: str) -> bool:
    """Whether glob `outer` matches everything glob `inner` matches (sound, not complete):
    equal, `*`, or `inner`'s literal text matched by `outer` when `inner` has no wildcard, or
    `inner` a literal prefix plus `*` under an `outer` ending in `*` with that prefix."""
    o, i = outer.lower(), inner.lower()
    if o == i or o == "*":
        return True
    if "*" not in i and "?" not in i:
        return glob_match(o, i)
    head = o[:-1]
    return o.endswith("*") and "*" not in head and "?" not in head and i.startswith(head)


def _allowed_actions(catalog: Catalog, entry: AllowEntry) -> frozenset[str]:
    got = catalog.expand(entry.action).actions
    return got if got else frozenset({entry.action.lower()})  # a pattern the catalog does not know


def _allowlist(base: Config, head: Config, catalog: Catalog) -> list[Weakening]:
    out = []
    for h in head.allowlist:
        covering = [b for b in base.allowlist if _covers_text(b.principal, h.principal)
                    and (b.expires is None or (h.expires is not None and h.expires <= b.expires))]
        allowed = _allowed_actions(catalog, h)
        before = frozenset().union(*(_allowed_actions(catalog, b) for b in covering)) if covering else frozenset()
        extra = allowed - before
        if extra and any(_covers_text(b.action, h.action) for b in covering):
            extra = frozenset()  # unknown to the catalog, but covered by a base glob
        if not extra:
            continue
        similar = [b for b in base.allowlist if b.action.lower() == h.action.lower()
                   or b.principal.lower() == h.principal.lower() or b.reason == h.reason]
        what = f"{h.action} for {h.principal}" + (f" until {h.expires.isoformat()}" if h.expires else "")
        n = len(extra)
        detail = f"allows {n} more action{'s' if n != 1 else ''}"
        if similar and not any(b.action.lower() == h.action.lower() for b in similar):
            detail += f" (was {similar[0].action} for {similar[0].principal})"
        elif similar:
            detail += " (a wider principal or a later expiry than the base's entry)"
        out.append(Weakening("allowlist-widened" if similar else "allowlist-added", what, detail))
    return out


def _deployments(base: Config, head: Config) -> list[Weakening]:
    """A named deployment removed, moved to another account or resolved otherwise changes what is judged:
    its baseline no longer judges the code, or judges another resolution of it."""
    now = {d.name: d for d in head.deployments}
    out = []
    for d in base.deployments:
        h = now.get(d.name)
        if h is None:
            out.append(Weakening("deployment-changed", d.name, f"removed (was account {d.account})"))
        elif h != d:
            what = [f"account {d.account} → {h.account}"] if h.account != d.account else []
            what += ["parameters changed"] if h.parameters != d.parameters else []
            what += ["var-files changed"] if h.var_files != d.var_files else []
            out.append(Weakening("deployment-changed", d.name, ", ".join(what)))
    return out


def compare(base: Config, head: Config, catalog: Catalog, defaults: dict[str, str] | None = None) -> list[Weakening]:
    """Each way `head` lets more through than `base`. `defaults`: check id -> its own severity."""
    defaults = _default_severities() if defaults is None else defaults
    out = [Weakening("check-disabled", c) for c in head.disable if c not in base.disable]
    for check in sorted(set(base.severity) | set(head.severity)):
        was = base.severity.get(check, defaults.get(check))
        now = head.severity.get(check, defaults.get(check))
        if was and now and _rank(now) < _rank(was):
            out.append(Weakening("severity-lowered", check, f"{was} → {now}"))
    if _rank(head.fail_on) > _rank(base.fail_on):
        out.append(Weakening("fail-on-raised", "fail-on", f"{base.fail_on} → {head.fail_on}"))
    if base.require_usage_data and not head.require_usage_data:
        was = "all-deployments" if base.require_all_deployments else "true"
        out.append(Weakening("require-usage-data-off", "require-usage-data", f"{was} → false"))
    elif base.require_all_deployments and not head.require_all_deployments:
        out.append(Weakening("require-usage-data-off", "require-usage-data", "all-deployments → true"))
    out += _deployments(base, head)
    # a longer min-observation, max-idle or deploy-lag keeps more grants out of `unused`
    for key, attr in DURATIONS.items():
        was, now = getattr(base, attr), getattr(head, attr)
        if now > was:
            out.append(Weakening("time-rule-raised", key, f"{was}d → {now}d"))
    out += _allowlist(base, head, catalog)
    # Which baseline judges a principal, which CloudFormation branch is taken, which folders the
    # managed policies, baselines and support data come from: each can make a grant look used.
    out += [Weakening("principal-mapped", k, f"{base.principals.get(k, '(by name)')} → {v}")
            for k, v in sorted(head.principals.items()) if base.principals.get(k) != v]
    out += [Weakening("parameter-changed", k, f"{base.parameters.get(k, '(the template default)')} → {v}")
            for k, v in sorted(head.parameters.items()) if base.parameters.get(k) != v]
    for key, attr in (("baselines", "baselines"), ("managed-policies", "managed_policies"), ("data-dir", "data_dir")):
        was, now = getattr(base, attr), getattr(head, attr)
        if now != was and now is not None:
            out.append(Weakening("data-path-changed", key, f"{was or '(the default)'} → {now}"))
    # a remote Terraform module trusted unread: its grants are no longer an unresolved-grant
    out += [Weakening("trusted-module-added", g, "a remote module matching it is trusted without being read")
            for g in head.trusted_modules if not any(_covers_text(b, g) for b in base.trusted_modules)]
    # a path no longer scanned: whatever IAM it declares is not judged (issue 19)
    out += [Weakening("exclude-added", g, "files under it are no longer scanned")
            for g in head.exclude if not any(_covers_text(b, g) for b in base.exclude)]
    known = _pattern_actions(catalog, base.unobservable)
    for pattern in head.unobservable:
        if pattern in base.unobservable:
            continue
        extra = _pattern_actions(catalog, [pattern]) - known
        if extra or not any(_covers_text(b, pattern) for b in base.unobservable):
            n = len(extra)
            out.append(Weakening("unobservable-added", pattern,
                                 f"{n} action{'s' if n != 1 else ''} no longer judged unused"))
    return out


def data_changes(files: list[str]) -> list[Weakening]:
    """Files of the trusted data (managed-policy cache, baselines, `.iamgate/`) that the PR changes:
    a forged managed policy or baseline would hide grants just as well as a config key."""
    return [Weakening("data-changed", f) for f in files]


TITLES = {
    "check-disabled": "check disabled",
    "severity-lowered": "severity lowered",
    "fail-on-raised": "`fail-on` raised",
    "require-usage-data-off": "usage data no longer required",
    "allowlist-added": "allowlist entry added",
    "allowlist-widened": "allowlist entry widened",
    "unobservable-added": "actions declared unobservable",
    "data-changed": "trusted data file changed",
    "principal-mapped": "principal mapped to another baseline",
    "parameter-changed": "CloudFormation parameter changed",
    "data-path-changed": "trusted data read from another path",
    "deployment-changed": "named deployment removed or changed",
    "time-rule-raised": "grants judged unused later",
    "trusted-module-added": "remote Terraform module trusted unread",
    "exclude-added": "path excluded from the scan",
}


def markdown(changes: list[Weakening], applies: str = "base", problem: str = "") -> str:
    """The comment and summary section. `applies`: `base` (the PR's changes wait for the merge)
    or `head` (config-from: head, so they apply to this PR). `problem`: why the PR's config could
    not be compared (already escaped)."""
    if not changes and not problem:
        return ""
    if applies == "base":
        lead = ("⚠️ **This PR weakens the gate's configuration.** The gate ran with the base commit's "
                "configuration: these apply after the merge, not to this PR.")
    else:
        lead = ("⚠️ **This PR weakens the gate's configuration, and it applies to this PR** "
                "(`config-from: head`).")
    lines = [lead, ""]
    if problem:
        lines += [f"- {problem}"]
    for w in changes[:MAX_LISTED]:
        lines.append(f"- {TITLES.get(w.kind, md(w.kind))}: {code(clip(w.subject, MAX_TEXT))}"
                     + (f" — {md(clip(w.detail, MAX_TEXT))}" if w.detail else ""))
    if len(changes) > MAX_LISTED:
        lines.append(f"- … and {len(changes) - MAX_LISTED} more")
    return "\n".join(lines) + "\n\n"


def log_lines(changes: list[Weakening]) -> list[str]:
    """Plain text for the step log (which shows escape sequences as colours: made visible)."""
    return [terminal(f"{TITLES.get(w.kind, w.kind).replace('`', '')}: {clip(w.subject, MAX_TEXT)}"
                     + (f" ({clip(w.detail, MAX_TEXT)})" if w.detail else "")) for w in changes]
