from __future__ import annotations

from iamgate.judge.risk import CREDENTIAL_EXPOSURE

from . import CHECKS
from ._ranked import RankedActions


@CHECKS.register
class CredentialExposure(RankedActions):
    name = CREDENTIAL_EXPOSURE
    title = "Unused or new actions that return credentials"
    severity = "high"
    reason = "unused; returns credentials, keys or tokens"
    what = "credential exposure"
    docs = ("An unused action that hands out credentials, keys, tokens or passwords (cloudsplaining's list in "
            "iamgate/data/risk.json). Reported here instead of under unused-actions.")
