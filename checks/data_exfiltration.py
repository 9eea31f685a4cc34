from __future__ import annotations

from iamgate.judge.risk import DATA_EXFILTRATION

from . import CHECKS
from ._ranked import RankedActions


@CHECKS.register
class DataExfiltration(RankedActions):
    name = DATA_EXFILTRATION
    title = "Unused or new data-exfiltration reads on every resource"
    severity = "medium"
    reason = "unused; reads data or secrets on Resource: *"
    what = "data exfiltration on Resource *"
    docs = ("An unused read that returns data or secrets (cloudsplaining's list in iamgate/data/risk.json), "
            "granted by a statement on `Resource: *` or with `NotResource`. Conditions are not weighed. Reported "
            "here instead of under unused-actions.")
