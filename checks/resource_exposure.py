from __future__ import annotations

from iamgate.judge.risk import RESOURCE_EXPOSURE

from . import CHECKS
from ._ranked import RankedActions


@CHECKS.register
class ResourceExposure(RankedActions):
    name = RESOURCE_EXPOSURE
    title = "Unused or new actions that change who can access a resource"
    severity = "high"
    reason = "unused; can expose a resource to other principals or accounts"
    what = "resource exposure"
    docs = ("An unused action that rewrites a resource policy, ACL, grant, public-access block or share "
            "(policy_sentry's resource exposure, as listed in iamgate/data/risk.json). Reported here instead of "
            "under unused-actions.")
