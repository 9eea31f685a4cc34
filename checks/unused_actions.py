from __future__ import annotations

from iamgate.judge.risk import assessment
from iamgate.judge.severity import split_by_access_level
from iamgate.model import Finding

from . import CHECKS, Analysis, Check


@CHECKS.register
class UnusedActions(Check):
    name = "unused-actions"
    title = "Granted actions that were never used"
    severity = "medium"
    docs = ("An action is unused when the principal's usage source could have seen it and did not, in the "
            "baseline window. Severity follows the action's access level: Permissions management is high, "
            "Write medium, Read, List and Tagging low. An unused action that a risk check reports (an escalation "
            "combination it completes, credential or resource exposure, data exfiltration) is reported there "
            "instead, once, at that check's severity.")

    def run(self, analysis: Analysis):
        for r in analysis.results:
            groups: dict = {}
            unused = assessment(analysis, r).unranked
            if not unused:
                continue
            for loc, actions in r.by_first_location(unused).items():
                for sev, acts in split_by_access_level(analysis.catalog, actions).items():
                    groups[(loc, sev)] = acts
            for (loc, sev), actions in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
                n = len(actions)
                window = ""
                if r.baseline and r.baseline.window_start:
                    window = f" between {r.baseline.window_start[:10]} and {(r.baseline.window_end or '?')[:10]}"
                yield Finding(self.name, sev, r.principal.id, tuple(actions), loc,
                              f"{n} granted action{'s' if n != 1 else ''} never used{window}",
                              reason="observable and not observed")
