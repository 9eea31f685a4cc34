from __future__ import annotations

from iamgate.model import Finding

from . import CHECKS, Analysis, Check


@CHECKS.register
class NoUsageData(Check):
    name = "no-usage-data"
    title = "No usage baseline for the principal"
    severity = "info"
    docs = ("No baseline matched the principal, so none of its grants can be judged. Map it in the config's "
            "`principals`, or raise this check's severity in `severity:` to make it fail the gate.")

    def run(self, analysis: Analysis):
        for r in analysis.results:
            n = sum(len(acts) for acts in r.groups.get("no-usage-data", {}).values())
            if r.baseline is None and n:
                loc = r.principal.location
                yield Finding(self.name, self.severity, r.principal.id, (), loc,
                              f"no usage baseline matched {r.principal.display_name}; "
                              f"{n} granted action{'s' if n != 1 else ''} not judged",
                              subject="baseline", reason="no baseline")
