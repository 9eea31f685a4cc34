from __future__ import annotations

from iamgate.model import Finding

from . import CHECKS, Analysis, Check


@CHECKS.register
class UnresolvedGrant(Check):
    name = "unresolved-grant"
    title = "What a policy allows cannot be resolved statically"
    severity = "high"
    docs = ("An Allow statement's `Action` or `NotAction`, a statement's `Effect`, or a whole statement or "
            "document is decided only at deploy or apply time (a function iamgate does not evaluate, an "
            "import, a variable without a value). It could grant anything, `*` included, so iamgate cannot "
            "vouch for it and does not count it as granting nothing. Make the value literal, or lower this "
            "check in `severity:` if the value is trusted.")

    def run(self, analysis: Analysis):
        for u in analysis.unresolved:
            if u.grant:
                yield Finding(self.name, self.severity, u.principal_id or u.location.file, (), u.location,
                              f"{u.message}; it could grant any action", subject=u.message,
                              reason="could grant anything")
