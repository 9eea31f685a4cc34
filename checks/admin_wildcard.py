from __future__ import annotations

from iamgate.judge.conditions import effective
from iamgate.judge.grants import on_every_resource
from iamgate.model import Finding

from . import CHECKS, Analysis, Check

# "All but a few": a grant on every resource that leaves out at most this many catalog actions is
# administrator access (`NotAction: iam:PassRole` leaves out 1). A NotAction of whole services such as
# PowerUserAccess's `iam:*`, `organizations:*`, `account:*` (hundreds of actions) is judged action by action.
ALL_BUT = 50


@CHECKS.register
class AdminWildcard(Check):
    name = "admin-wildcard"
    title = "Full administrator access (`*` on `*`, or all but a few actions)"
    severity = "critical"
    docs = ("Allow statements grant every action, or all but a few (`NotAction`), on every resource, with no "
            f"condition or one that always holds (`StringLikeIfExists` with `*`, `Null: false` on a key every "
            f"request has, ...). Judged on the expanded grant after Denies, with or without usage data; at most "
            f"{ALL_BUT} catalog actions may be missing.")

    def run(self, analysis: Analysis):
        everything = analysis.catalog.all_actions
        outside: dict[int, tuple[frozenset, frozenset]] = {}  # id(a wide set) -> (it, the catalog less it)
        for r in analysis.results:
            wide = [(st, acts) for st, acts in r.allows
                    if acts and not effective(st.condition) and on_every_resource(st)]
            # at least |everything| - sum of the grants' sizes are missing: most grants are decided by size
            if not wide or len(everything) - sum(len(acts) for _, acts in wide) > ALL_BUT:
                continue
            # what the widest (a NotAction grant's set, shared by principals) leaves out, less what the others grant
            most = max((acts for _, acts in wide), key=len)
            hit = outside.get(id(most))
            if hit is None or hit[0] is not most:
                hit = outside[id(most)] = (most, everything - most)
            missing = len(hit[1].difference(*(acts for _, acts in wide if acts is not most)))
            if missing > ALL_BUT:
                continue
            st = max(wide, key=lambda pair: len(pair[1]))[0]
            how = "* on *" if not missing else f"all but {missing} action{'s' * (missing != 1)} on *"
            yield Finding(self.name, self.severity, r.principal.id, ("*",), st.location,
                          f"{_policy_name(r.principal, st)}grants {how}", combination=True,
                          reason="administrator access")


def _policy_name(principal, st) -> str:
    for policy in principal.policies:
        if any(s is st for s in policy.statements):
            return f"policy {policy.name} "
    return ""
