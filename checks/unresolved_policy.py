from __future__ import annotations

from iamgate.model import Finding

from . import CHECKS, Analysis, Check


@CHECKS.register
class UnresolvedPolicy(Check):
    name = "unresolved-policy"
    title = "A policy or part of one cannot be resolved statically"
    severity = "info"
    docs = ("Something decides the grant only at deploy or apply time (an import, a missing parameter, a "
            "managed policy not in the cache). iamgate reports it rather than guessing.")

    def run(self, analysis: Analysis):
        for u in analysis.unresolved:
            if u.grant:  # the unresolved-grant check reports it, at its own severity
                continue
            yield Finding(self.name, self.severity, u.principal_id or u.location.file, (), u.location,
                          u.message, subject=u.message, reason="unresolved")
