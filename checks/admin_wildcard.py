from __future__ import annotations

from iamgate.judge.grants import on_every_resource
from iamgate.model import Finding

from . import CHECKS, Analysis, Check


@CHECKS.register
class AdminWildcard(Check):
    name = "admin-wildcard"
    title = "Full administrator access (`*` on `*`)"
    severity = "critical"
    docs = "An Allow statement grants every action on every resource with no condition."

    def run(self, analysis: Analysis):
        for r in analysis.results:
            seen = set()
            for policy in r.principal.policies:
                for st in policy.statements:
                    if not st.is_allow or st.condition or not on_every_resource(st):
                        continue
                    if any(a.strip() in ("*", "*:*") for a in st.actions) and st.location not in seen:
                        seen.add(st.location)
                        yield Finding(self.name, self.severity, r.principal.id, ("*",), st.location,
                                      f"policy {policy.name} grants * on *", combination=True,
                                      reason="administrator access")
