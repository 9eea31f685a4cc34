"""Issue 18's faster check: work on a large grant (NotAction, `*`) shared between the principals granted the same
set, each principal's few differences taken out. Every shortcut must give what the plain computation gives."""
from __future__ import annotations

import random

import pytest

from iamgate.judge import grants, severity, verdicts
from iamgate.judge.verdicts import Decider, Observability
from iamgate.model import Baseline, Location, Policy, Principal, PrincipalResult, Statement, UsedAction
from iamgate.reference.catalog import derivation, difference, drop_sorted, less
from iamgate.sources.loaders import LoadError, load_yaml


def st(actions=(), not_actions=(), line=1):
    return Statement("Allow", tuple(actions), tuple(not_actions), ("*",), (), {}, None, Location("t.json", line))


def result(catalog, *stmts, unknown=()):
    p = Principal("P", "role", name="p", policies=(Policy("p", tuple(stmts)),))
    g = grants.compute(p, catalog)
    return PrincipalResult(p, None, {}, tuple(g.allows), {u: (stmts[0],) for u in unknown}, granted_actions=g.actions)


def naive_first_locations(r: PrincipalResult, actions) -> dict:
    out: dict = {}
    for a in actions:
        loc = r.first_location(a) if a in r.unknown else next((s.location for s, acts in r.allows if a in acts), None)
        out.setdefault(loc, set()).add(a)
    return out


def test_less_remembers_the_root_and_everything_removed(catalog):
    root = catalog.expand_not_actions(["iam:*"]).actions
    one = less(root, {"s3:getobject", "s3:putobject"})
    two = less(one, {"ec2:runinstances", "not:inthere"})
    assert two == root - {"s3:getobject", "s3:putobject", "ec2:runinstances"}
    got_root, removed = derivation(two)
    assert got_root is root and {"s3:getobject", "s3:putobject", "ec2:runinstances"} <= removed
    assert derivation(frozenset(set(two))) is None  # an equal set made otherwise is not taken for it
    assert less(root, ()) is root
    stmt = catalog.expand_all(["s3:*", "ec2:*"]).actions
    assert difference(two, stmt) == two - stmt and difference(two, stmt) == difference(frozenset(set(two)), stmt)
    small = less(frozenset({"a", "b"}), {"a"})
    assert small == {"b"} and derivation(small) is None  # small sets are sorted directly


@pytest.mark.parametrize("seed", range(5))
def test_drop_sorted_is_the_filtered_list(seed):
    rng = random.Random(seed)
    ordered = sorted(rng.sample(range(10_000), 3_000))
    removed = set(rng.sample(ordered, rng.randint(0, 40))) | set(rng.sample(range(10_000, 20_000), 5)) | {-1}
    assert drop_sorted(ordered, removed) == [x for x in ordered if x not in removed]
    assert drop_sorted(ordered, ()) == ordered and drop_sorted(ordered, ()) is not ordered


def test_sort_and_split_of_a_shared_set_less_a_few_match_the_plain_set(catalog):
    root = catalog.expand_not_actions(["iam:*", "organizations:*"]).actions | {"zzz:unknownpattern", "yyy:other"}
    removed = {"s3:getobject", "kms:decrypt", "ec2:runinstances", "iam:passrole", "yyy:other"}
    derived = less(root, removed)
    plain = frozenset(set(derived))  # equal, made otherwise
    assert derivation(derived) is not None and derivation(plain) is None
    assert catalog.sort(derived) == sorted(plain) == catalog.sort(plain)
    split = severity.split_by_access_level(catalog, derived)
    assert split == severity.split_by_access_level(catalog, plain)
    assert "zzz:unknownpattern" in split["low"] and "yyy:other" not in split["low"]


@pytest.mark.parametrize("order", ["notaction-first", "notaction-last", "two-wide"])
def test_first_location_sets_of_a_large_set_match_action_by_action(catalog, order):
    small = [st(["s3:GetObject", "s3:PutObject"], line=1), st(["iam:Get*", "iam:PassRole"], line=2),
             st(["ec2:Describe*"], line=3)]
    wide = st(not_actions=["iam:*", "organizations:*"], line=9)
    stmts = {"notaction-first": [wide, *small], "notaction-last": [*small, wide],
             "two-wide": [small[0], wide, small[1], st(not_actions=["ec2:*"], line=12)]}[order]
    r = result(catalog, *stmts, unknown=("zzz:nothing",))
    granted = r.granted
    for actions in (less(granted, {"s3:getobject", "ec2:describeinstances"}),  # a shared set less a few
                    frozenset(granted) | {"zzz:nothing", "organizations:listaccounts"},  # unknown, not granted
                    frozenset(list(granted)[:50]), frozenset()):
        got = r.first_location_sets(actions)
        assert {loc: set(acts) for loc, acts in got.items()} == naive_first_locations(r, actions)
        assert r.by_first_location(actions) == {loc: sorted(acts) for loc, acts in got.items()}
        without = frozenset({"s3:putobject", "iam:passrole", "zzz:nothing", "ec2:runinstances", "not:granted"})
        less_got = r.first_location_sets(actions, without)  # grouped as if `without` had been taken out first
        assert {loc: set(acts) for loc, acts in less_got.items()} == naive_first_locations(r, actions - without)


def _baseline(**kw):
    used = {"s3:getobject": UsedAction(3), "ec2:describeinstances": UsedAction(1), "iam:getrole": UsedAction(1)}
    return Baseline("arn:aws:iam::111122223333:role/p", "2026-08-24T00:00:00Z", "2026-11-22T00:00:00Z",
                    used=used, **kw)


@pytest.mark.parametrize("kw", [{}, {"not_accessed_services": frozenset({"ec2", "kms"})},
                                {"service_level_only": frozenset({"s3"})},
                                {"sources": ({"kind": "last-accessed"},), "service_level_only": frozenset({"kms"})},
                                {"sources": ({"kind": "access-analyzer"}, {"kind": "cloudtrail"})},
                                {"sources": ({"kind": "cloudtrail", "error": "boom"},)},
                                {"sources": ({"kind": "unused-access"},)}])  # a view made per baseline: not shared
def test_a_large_grant_split_once_gives_each_principal_its_own_verdicts(catalog, monkeypatch, kw):
    obs = Observability(catalog, ("logs:*",))
    granted = catalog.expand_not_actions(["organizations:*"]).actions
    b = _baseline(**kw)
    shared = Decider(b, obs).groups(granted)
    again = Decider(_baseline(**kw), obs).groups(granted)  # a second principal: from the remembered split
    assert len(obs.shared) == (0 if kw.get("sources") == ({"kind": "unused-access"},) else 1)
    monkeypatch.setattr(verdicts, "SHARED_FROM", 10 ** 9)
    plain = Decider(b, obs).groups(granted)
    for got in (shared, again):
        assert got == plain
        assert [(v, list(reasons)) for v, reasons in got.items()] == [(v, list(r)) for v, r in plain.items()]
    assert sum(map(len, (a for r in plain.values() for a in r.values()))) == len(granted)


def test_yaml_plain_strings_and_tags_as_before():
    doc = load_yaml("A: 2012-10-17\nB: Yes\nC: true\nD: 3\nE: !Sub x-${Env}\nF: [a, !Ref P, 1.5]\nG: null\n"
                    "H: &h {k: v}\nI: *h\n")
    assert doc == {"A": "2012-10-17", "B": "Yes", "C": True, "D": 3, "E": {"Fn::Sub": "x-${Env}"},
                   "F": ["a", {"Ref": "P"}, 1.5], "G": None, "H": {"k": "v"}, "I": {"k": "v"}}
    assert doc.line_of("F") == 6 and doc["F"].line == 6


def test_yaml_alias_bomb_is_refused_and_a_star_alone_is_not_an_alias():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    with pytest.raises(LoadError, match="alias bomb"):
        load_yaml("\n".join(lines) + "\n")
    assert load_yaml('Resource: "*"\nAction: "s3:*"\n') == {"Resource": "*", "Action": "s3:*"}


def test_the_risk_ranking_leaves_the_unranked_actions_to_be_taken_out_late(catalog):
    from iamgate.judge.risk import assess, load
    p = Principal("P", "role", name="p", policies=(Policy("p", (st(not_actions=["organizations:*"]),)),))
    granted = grants.compute(p, catalog).actions
    r = PrincipalResult(p, None, {"unused": {"never": less(granted, {"s3:getobject"})}},
                        tuple(grants.compute(p, catalog).allows), granted_actions=granted)
    a = assess(r, load())
    assert a.taken and a.taken <= a.unused and a.any_unranked()
    assert a.unranked == a.unused - a.taken
    assert frozenset().union(*a.claimed.values()) | frozenset(x for e in a.escalations for x in e.completing) == a.taken
    none = assess(PrincipalResult(p, None, {"unused": {"never": a.taken}}, r.allows, granted_actions=granted), load())
    assert not none.any_unranked() and not none.unranked
