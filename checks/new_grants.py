from __future__ import annotations

from iamgate.judge.risk import NEW_GRANTS, assessment
from iamgate.model import Finding

from . import CHECKS, Analysis, Check
from ._ranked import by_place_and_level


@CHECKS.register
class NewGrants(Check):
    name = NEW_GRANTS
    title = "Actions granted by this change"
    severity = "medium"
    docs = ("An action granted at the head but not on the base being compared (`--diff-base`, the PR's base in "
            "the Action, or the grant history): nothing can have used it yet, so it is judged by its risk alone, "
            "with the rule that ranks unused actions. Severity follows its access level: Permissions management "
            "is high, Write medium, Read, List and Tagging low. A new action that a risk check reports (an "
            "escalation combination it completes, credential or resource exposure, data exfiltration on "
            "`Resource: *`) is reported there instead, once, at that check's severity. Never removed by `fix`.")

    def run(self, analysis: Analysis):
        for r in analysis.results:
            new = assessment(analysis, r).unranked_new
            if not new:
                continue
            groups = by_place_and_level(r, analysis.catalog, new)
            for (loc, sev), actions in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
                n = len(actions)
                yield Finding(self.name, sev, r.principal.id, tuple(actions), loc,
                              f"{n} new action{'s' if n != 1 else ''} granted by this change",
                              reason="new grant; judged by its access level")
