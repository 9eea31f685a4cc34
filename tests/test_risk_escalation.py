"""Every escalation combination fires on a minimal policy, in every source format, and does not fire
when one of its actions is missing or denied. One analysis per format, many principals per file."""
from __future__ import annotations

import re

import pytest

from fixtures.risk.cases import FORMATS, build_cases, write
from iamgate.judge import risk
from iamgate.config import Config
from iamgate.judge.verdicts import default_observability
from iamgate.pipeline import analyse
from iamgate.sources import SOURCES

COMBOS = risk.load().combinations
NEEDS_SOURCE = {"tf-document": "terraform", "tf-jsonencode": "terraform", "tf-plan": "terraform-plan"}
SLOW_PARSER = {"tf-document", "tf-jsonencode"}  # python-hcl2: one rotating action per combination, not each
CRITICAL_RX = re.compile(r"^privilege escalation via (\w+) .*?(?:; also enables ([\w, ]+))?$")
QUIET_RX = re.compile(r"^can escalate privileges via \d+ combinations? \([^)]*\): ([\w, ]+)$")

_outcomes: dict = {}


def reported(findings) -> tuple[set, set]:
    """(critical combination ids, info combination ids) named by privilege-escalation findings."""
    critical, quiet = set(), set()
    for f in findings:
        if f.check != risk.PRIVILEGE_ESCALATION:
            continue
        if f.severity == "critical":
            m = CRITICAL_RX.match(f.message)
            assert m, f.message
            critical.add(m.group(1))
            critical.update(x for x in (m.group(2) or "").split(", ") if x)
        else:
            m = QUIET_RX.match(f.message)
            assert m and f.severity == "info", f.message
            quiet.update(m.group(1).split(", "))
    return critical, quiet


def outcome(fmt: str, tmp_path_factory, catalog) -> dict:
    """case name -> (case, critical ids, info ids, principal result), built once per format."""
    if fmt not in _outcomes:
        source = NEEDS_SOURCE.get(fmt)
        if source and source not in SOURCES.names():
            pytest.skip(f"the {source} source is not importable yet (iamgate/sources/{source.replace('-', '_')}.py)")
        cases = build_cases(risk.load(), default_observability(catalog), every_action=fmt not in SLOW_PARSER)
        root = tmp_path_factory.mktemp(fmt)
        paths, mapping, by_arn = write(fmt, root, cases)
        report = analyse(paths, [str(root / "baselines")], Config(principals=mapping), catalog=catalog,
                         base=str(root))
        assert not report.errors and not report.unmatched_baselines
        by_principal: dict = {}
        for f in report.findings:
            by_principal.setdefault(f.principal, []).append(f)
        out = {}
        for r in report.results:
            case = by_arn[r.baseline.principal_arn]
            out[case.name] = (case, *reported(by_principal.get(r.principal.id, [])), r)
        assert len(out) == len(cases)
        _outcomes[fmt] = out
    return _outcomes[fmt]


@pytest.mark.parametrize("combo", COMBOS, ids=[c.id for c in COMBOS])
@pytest.mark.parametrize("fmt", FORMATS)
def test_combination_fires_only_when_complete(fmt, combo, tmp_path_factory, catalog):
    cases = [v for v in outcome(fmt, tmp_path_factory, catalog).values() if v[0].combo is combo]
    kinds = {case.kind for case, *_ in cases}
    assert kinds == {"fire", "used", "missing", "denied"}
    for case, critical, quiet, result in cases:
        if case.kind in ("fire", "used"):
            assert combo.actions <= result.granted, case.name
        if case.kind == "fire":
            # granted across two policies, one action unused: critical
            assert combo.id in critical, (case.name, critical)
        elif case.kind == "used":
            # every action used: shown, not critical
            assert combo.id not in critical and combo.id in quiet, (case.name, critical, quiet)
        else:
            # one action missing or denied: the combination is not granted, so it is not reported at all
            dropped = set(combo.actions) - result.granted
            assert len(dropped) == 1, (case.name, dropped)
            assert combo.id not in critical and combo.id not in quiet, (case.name, critical, quiet)
