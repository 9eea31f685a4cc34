from __future__ import annotations

from iamgate.model import Finding

from . import CHECKS, Analysis, Check


@CHECKS.register
class UnknownActions(Check):
    name = "unknown-actions"
    title = "Actions or services that are not in the action catalog"
    severity = "info"
    docs = ("The pattern matches no current IAM action: a typo, a removed action, or a service newer than the "
            "catalog. It grants nothing today, but is never passed silently.")

    def run(self, analysis: Analysis):
        for r in analysis.results:
            unknown = frozenset().union(*r.groups.get("unknown", {}).values())  # not every verdict sorted
            if not unknown:
                continue
            for loc, actions in r.by_first_location(unknown).items():
                yield Finding(self.name, self.severity, r.principal.id, tuple(sorted(actions)), loc,
                              f"not in the action catalog ({analysis.catalog.version})",  # formats list the actions
                              reason="unknown action")
