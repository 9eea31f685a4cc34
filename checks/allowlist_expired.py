from __future__ import annotations

from iamgate.model import Finding

from . import CHECKS, Analysis, Check


@CHECKS.register
class AllowlistExpired(Check):
    name = "allowlist-expired"
    title = "An allowlist entry has expired"
    severity = "medium"
    docs = "An allowlist entry past its `expires` date no longer suppresses findings; renew or remove it."

    def run(self, analysis: Analysis):
        for e in analysis.config.allowlist:
            if e.expired(analysis.today):
                yield Finding(self.name, self.severity, e.principal, (e.action,), None,
                              f"allowlist entry {e.action} for {e.principal} expired on {e.expires} "
                              f"(reason: {e.reason})", subject=f"{e.principal}|{e.action}", reason="expired")
