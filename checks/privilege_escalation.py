from __future__ import annotations

from iamgate.judge.risk import (
    COMPLETED_BY_NEW,
    COMPLETED_BY_UNUSED,
    IN_USE,
    NOT_JUDGED,
    PRIVILEGE_ESCALATION,
    assessment,
)
from iamgate.model import Finding
from iamgate.reference.catalog import action_names

from . import CHECKS, Analysis, Check

QUIET_SUBJECT = "escalation paths not completed by unused actions"


@CHECKS.register
class PrivilegeEscalation(Check):
    name = PRIVILEGE_ESCALATION
    title = "A privilege-escalation combination is granted"
    severity = "critical"
    docs = ("Every action of a known escalation combination (iamgate/data/risk.json) is granted across all "
            "the principal's policies, after expansion and Denies. Critical, one finding per combination, when "
            "at least one of its actions is unused, or new (granted by this change): the principal can escalate, "
            "and does not even need to. "
            "Supersets of a critical combination are folded into it: removing its unused action breaks them too. "
            "Combinations whose actions are all used, unobservable or allowlisted, or that cannot be judged "
            "without usage data, are listed in one info finding per principal: least privilege cannot remove "
            "them, but they are shown.")
    severity_rules = {"critical": f"an escalation combination is granted and {COMPLETED_BY_UNUSED} "
                                  f"(or {COMPLETED_BY_NEW})",
                      "info": f"an escalation combination is granted and {IN_USE}, or there is {NOT_JUDGED} "
                              "(one finding per principal)"}

    def run(self, analysis: Analysis):
        for r in analysis.results:
            quiet = []
            for e in assessment(analysis, r).escalations:
                if e.severity != "critical":
                    quiet.append(e)
                    continue
                c = e.combination
                a = assessment(analysis, r)
                new = [x for x in e.completing if x in a.new]
                old = [x for x in e.completing if x not in a.new]
                by = "; ".join(f"{word} {', '.join(action_names(acts))}" for word, acts in
                               (("unused", old), ("new", new)) if acts)
                msg = f"privilege escalation via {c.id} ({c.description.rstrip('.')}); completed by {by}"
                if e.also:
                    msg += "; also enables " + ", ".join(x.id for x in e.also)
                # point at the line to change: the statement granting a completing action
                yield Finding(self.name, e.severity, r.principal.id, c.sorted_actions,
                              r.first_location(e.completing[0]), msg, combination=True, reason=e.reason)
            if quiet:
                ids = sorted(x.id for e in quiet for x in (e.combination, *e.also))
                n = len(ids)
                yield Finding(self.name, "info", r.principal.id, (),
                              r.first_location(quiet[0].combination.sorted_actions[0]),
                              f"can escalate privileges via {n} combination{'s' if n != 1 else ''} "
                              f"({quiet[0].reason}): {', '.join(ids)}", subject=QUIET_SUBJECT, reason=quiet[0].reason)
