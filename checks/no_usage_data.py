from __future__ import annotations

from iamgate.model import Finding

from . import CHECKS, Analysis, Check


@CHECKS.register
class NoUsageData(Check):
    name = "no-usage-data"
    title = "No usage baseline for the principal"
    severity = "info"
    docs = ("No baseline matched the principal, so none of its grants can be judged; or its baseline cannot judge "
            "part of the grant (an unused-access analyzer that has not analysed it yet, a grant the deployed "
            "policies lack). Map it in the config's `principals`, or raise this check's severity in `severity:` to "
            "make it fail the gate.")

    def run(self, analysis: Analysis):
        for r in analysis.results:
            n = sum(len(acts) for acts in r.groups.get("no-usage-data", {}).values())
            if r.baseline is None and n:
                loc = r.principal.location
                yield Finding(self.name, self.severity, r.principal.id, (), loc,
                              f"no usage baseline matched {r.principal.display_name}; "
                              f"{n} granted action{'s' if n != 1 else ''} not judged",
                              subject="baseline", reason="no baseline")
            elif n:  # a baseline whose source could not judge part of the grant (e.g. not analysed yet)
                reasons = "; ".join(sorted(r.groups["no-usage-data"]))
                yield Finding(self.name, self.severity, r.principal.id, (), r.principal.location,
                              f"{n} granted action{'s' if n != 1 else ''} of {r.principal.display_name} not judged "
                              f"by its baseline: {reasons}", subject="baseline", reason="not judged")
