from __future__ import annotations

from iamgate.judge.risk import PASSROLE, unrestricted_passrole
from iamgate.model import Finding

from . import CHECKS, Analysis, Check


@CHECKS.register
class PassRoleWildcard(Check):
    name = "passrole-wildcard"
    title = "`iam:PassRole` on every role without an `iam:PassedToService` condition"
    severity = "high"
    docs = ("The principal can hand any role in the account to any service that accepts one, the first step "
            "of most escalation paths. Counted when an Allow grants iam:PassRole (after Denies) on `*`, on "
            "`arn:aws:iam::<account>:role/*` or with `NotResource`, and neither it nor a Deny of PassRole has an "
            "`iam:PassedToService` condition. PassRole is never logged as a call of its own, so usage cannot "
            "clear this finding; name the roles or add the condition.")

    def run(self, analysis: Analysis):
        for r in analysis.results:
            statements = unrestricted_passrole(r)
            if not statements:
                continue
            where = ", ".join(str(st.location) for st in statements[1:] if st.location)
            msg = "iam:PassRole is granted on every role without an iam:PassedToService condition"
            if where:
                msg += f" (also at {where})"
            yield Finding(self.name, self.severity, r.principal.id, (PASSROLE,), statements[0].location, msg,
                          reason="PassRole on * without iam:PassedToService")
