from __future__ import annotations

from collections import defaultdict

from iamgate.model import Finding
from iamgate.severity import by_access_level

from . import CHECKS, Analysis, Check


@CHECKS.register
class UnusedActions(Check):
    name = "unused-actions"
    title = "Granted actions that were never used"
    severity = "medium"
    docs = ("An action is unused when the principal's usage source could have seen it and did not, in the "
            "baseline window. Severity follows the action's access level: Permissions management is high, "
            "Write medium, Read, List and Tagging low.")

    def run(self, analysis: Analysis):
        for r in analysis.results:
            groups: dict = defaultdict(list)
            for v in r.verdicts:
                if v.verdict != "unused":
                    continue
                sev = by_access_level(analysis.catalog, v.action)
                groups[(v.granted_by[0] if v.granted_by else None, sev)].append(v.action)
            for (loc, sev), actions in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
                n = len(actions)
                window = ""
                if r.baseline and r.baseline.window_start:
                    window = f" between {r.baseline.window_start[:10]} and {(r.baseline.window_end or '?')[:10]}"
                yield Finding(self.name, sev, r.principal.id, tuple(sorted(actions)), loc,
                              f"{n} granted action{'s' if n != 1 else ''} never used{window}",
                              reason="observable and not observed")
