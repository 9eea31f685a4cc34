"""Issue 18: `summarise` decides once per (identity, event, error) group instead of once per key, and
compares times raw where they are all canonical. Differential test: on varied counts (times in several
forms, AccessDenied and other errors, request detail, service and unknown identities, resources,
--principal globs, coverage) its summary equals, dict order included, the one the per-key algorithm it
replaced gives. `_reference` below is that algorithm, kept verbatim but for what an event and an identity
mean (`EventMeanings`, `identity`), moved out of its loop unchanged."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import random
from collections import Counter

import pytest

from iamgate.model import Baseline, UsedAction
from iamgate.usage._ct_agg import (
    SIGNAL,
    CloudTrailSummary,
    EventMeanings,
    _label,
    account_window,
    identity,
    normalise_time,
    summarise,
)
from iamgate.usage._ct_map import EventMapper, is_access_denied
from iamgate.usage._ct_res import ResourceFilter, bounded


def _later(a, b):
    return b if a is None or (b is not None and b > a) else a


def _earlier(a, b):
    return b if a is None or (b is not None and b < a) else a


@dataclass
class _Principal:
    used: dict = field(default_factory=dict)
    denied: dict = field(default_factory=dict)
    unmapped: Counter = field(default_factory=Counter)
    events: int = 0
    data_services: set = field(default_factory=set)
    regions: set = field(default_factory=set)


def _reference(counts: dict, *, files: int, catalog, mapper, principal_glob=None, notes=(), engine="local",
               coverage=None) -> CloudTrailSummary:
    """`summarise` as it was before issue 18's parent-side work: everything per key."""
    meaning = EventMeanings(mapper, catalog)  # moved verbatim out of the per-key loop
    principals: dict[str, _Principal] = {}
    kept_apart: Counter = Counter()
    unmapped: Counter = Counter()
    first = last = None
    events = mapped = no_iam = 0
    on_resources = ResourceFilter()
    for key, (count, t0, t1) in counts.items():
        itype, iarn, issuer, invoked, source, name, error, region, etype, cat, detail, found = key
        events += count
        t0, t1 = normalise_time(t0), normalise_time(t1)
        first, last = _earlier(first, t0), _later(last, t1)
        skip, actions, why, is_data = meaning(source, name, etype, detail, cat)
        klass, who, wanted = identity(itype, iarn, issuer, invoked, principal_glob)
        if skip:
            no_iam += count
            continue
        if klass != "principal":
            kept_apart[(klass, who)] += count
            if actions:
                mapped += count
            else:
                unmapped[_label(source, name, why)] += count
            continue
        if not wanted:
            continue
        p = principals.get(who)
        if p is None:
            p = principals[who] = _Principal()
        p.events += count
        p.regions.add(region)
        if is_data:
            p.data_services.update(a.partition(":")[0] for a in actions)
        if not actions:
            label = _label(source, name, why)
            unmapped[label] += count
            p.unmapped[label] += count
            continue
        mapped += count
        target = p.denied if is_access_denied(error) else p.used
        for a in actions:
            slot = target.setdefault(a, {"count": 0, "last_seen": None, "first_seen": None})
            slot["count"] += count
            slot["last_seen"] = _later(slot["last_seen"], t1)
            slot["first_seen"] = _earlier(slot["first_seen"], t0)
            if target is p.used:
                if region:
                    slot.setdefault("regions", set()).add(region)
                if error:
                    slot["errors"] = slot.get("errors", 0) + count
                if slot.get("arns", ()) is not None:
                    arns = on_resources(a, found) if found else ()
                    if arns:
                        slot.setdefault("arns", set()).update(arns)
                    else:
                        slot["arns"] = None
    window = (first, last)
    source_entry = {"kind": SIGNAL, "events": events, "files": files} if engine == "local" else {
        "kind": SIGNAL, "events": events, "engine": engine}
    baselines, documents = [], {}
    for arn, p in sorted(principals.items()):
        used = {a: _reference_used(s) for a, s in p.used.items()}
        denied = {a: {"count": s["count"], "last_seen": s["last_seen"]} for a, s in p.denied.items()}
        start, end = account_window(arn, p.regions, coverage, window)
        baselines.append(Baseline(principal_arn=arn, window_start=start, window_end=end, sources=(source_entry,),
                                  used=used, data_events_observed=frozenset(p.data_services), denied=denied))
        documents[arn] = {
            "regions": {a: sorted(s.get("regions", ())) for a, s in p.used.items()},
            "errors": {a: s["errors"] for a, s in p.used.items() if s.get("errors")},
            "notes": [f"unmapped: {k} ({c} events)" for k, c in p.unmapped.most_common()],
        }
    return CloudTrailSummary(
        baselines=tuple(baselines), documents=documents, events=events, files=files, window=window,
        mapped_events=mapped, unmapped=tuple(unmapped.most_common()), no_iam_events=no_iam,
        kept_apart=tuple((k, w, c) for (k, w), c in kept_apart.most_common()),
        data_events_observed=frozenset(meaning.data_services),
        categories={s: sorted(c) for s, c in sorted(meaning.categories.items())}, notes=tuple(notes))


def _reference_used(slot: dict) -> UsedAction:
    arns, more, prefix = bounded(slot["arns"]) if slot.get("arns") else ((), 0, None)
    return UsedAction(slot["count"], slot["last_seen"], (SIGNAL,), first_seen=slot.get("first_seen"),
                      resources=arns, resources_more=more, resources_prefix=prefix)


def _ordered(x):
    """A summary as nested lists: dict and sequence order count, set order does not."""
    if dataclasses.is_dataclass(x):
        return [type(x).__name__] + [_ordered(getattr(x, f.name)) for f in dataclasses.fields(x)]
    if isinstance(x, dict):
        return [("dict", _ordered(k), _ordered(v)) for k, v in x.items()]
    if isinstance(x, (set, frozenset)):
        return ("set", sorted(map(repr, x)))
    if isinstance(x, (list, tuple)):
        return [type(x).__name__] + [_ordered(v) for v in x]
    return x


ACCOUNT = "111122223333"
IDENTITIES = [
    ("AssumedRole", None, f"arn:aws:iam::{ACCOUNT}:role/app-1-role", None),
    ("AssumedRole", None, f"arn:aws:iam::{ACCOUNT}:role/app-12-role", None),
    ("AssumedRole", f"arn:aws:sts::{ACCOUNT}:assumed-role/ci-deploy/session-9", None, None),  # no sessionContext
    ("IAMUser", f"arn:aws:iam::{ACCOUNT}:user/dev-01", None, None),
    ("IAMUser", "arn:aws:iam::444455556666:user/dev-02", None, None),  # another account: its own coverage
    ("FederatedUser", None, f"arn:aws:iam::{ACCOUNT}:role/sso/admin", None),
    ("AssumedRole", None, f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
     None),
    ("AWSService", None, None, "lambda.amazonaws.com"),
    ("AWSService", None, None, None),
    (None, None, None, None),
    ("Root", f"arn:aws:iam::{ACCOUNT}:root", None, None),
    ("AWSAccount", None, None, None),
]
# (source, name, type, category, detail, resource candidates to pick from)
EVENTS = [
    ("s3.amazonaws.com", "GetObject", "AwsApiCall", "Data", "",
     [(("object", "arn:aws:s3:::bucket-a/exports/*"),), ((None, "arn:aws:s3:::bucket-b/logs/*"),),
      (("bucket", "arn:aws:s3:::bucket-a"), ("object", "arn:aws:s3:::bucket-a/x/*"))]),
    ("s3.amazonaws.com", "ListBuckets", "AwsApiCall", "Management", "", []),
    ("s3.amazonaws.com", "PutObject", "AwsApiCall", None, "", [(("object", "arn:aws:s3:::bucket-c/in/*"),)]),
    ("ec2.amazonaws.com", "DescribeInstances", "AwsApiCall", "Management", "", []),
    ("ssm.amazonaws.com", "GetParameters", "AwsApiCall", "Management", "",
     [tuple(("parameter", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/p{i}") for i in range(j, j + 3))
      for j in range(0, 60, 3)]),  # past the bound of 50 ARNs per action
    ("kms.amazonaws.com", "Decrypt", "AwsApiCall", "Management", "",
     [(("key", f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k1"),), ((None, f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k2"),)]),
    ("dynamodb.amazonaws.com", "ExecuteStatement", "AwsApiCall", "Data", "SELECT", []),
    ("dynamodb.amazonaws.com", "ExecuteStatement", "AwsApiCall", "Data", "SELECT,UPDATE", []),
    ("dynamodb.amazonaws.com", "ExecuteStatement", "AwsApiCall", "Data", "", []),  # the request does not say
    ("dynamodb.amazonaws.com", "BatchExecuteStatement", "AwsApiCall", "Data", "DELETE,NOPE", []),
    ("sts.amazonaws.com", "GetCallerIdentity", "AwsApiCall", "Management", "", []),  # permissionless
    ("signin.amazonaws.com", "ConsoleLogin", "AwsConsoleSignIn", "Management", "", []),  # no IAM action
    ("ec2.amazonaws.com", "RunInstances", "AwsServiceEvent", "Management", "", []),
    ("made-up.amazonaws.com", "DoThing", "AwsApiCall", "Management", "", []),  # not in the catalog
    ("iam.amazonaws.com", "NotARealCall", "AwsApiCall", "Management", "", []),
    (None, None, "AwsApiCall", None, "", []),
    ("lambda.amazonaws.com", "Invoke", "AwsApiCall", "Data", "",
     [(("function", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f1"),)]),
]
ERRORS = [None, None, None, "AccessDenied", "Client.UnauthorizedOperation", "AccessDeniedException",
          "ThrottlingException", "NoSuchKey", ""]
REGIONS = ["us-east-1", "us-east-1", "eu-west-1", "ap-southeast-2", None, ""]


def _time(rng: random.Random, canonical: bool) -> str | None:
    d, h, m, s = rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    base = f"2024-08-{d:02d}T{h:02d}:{m:02d}:{s:02d}Z"
    if canonical:
        return base
    return rng.choice([base, base, None, base[:19] + ".123Z", base[:19] + ".5Z",  # fractional seconds
                       base[:10] + " " + base[11:19] + ".000",  # Athena's timestamp as text
                       base[:10] + " " + base[11:19], base[:10] + "X" + base[11:19] + "Z",  # odd separators
                       base[:10] + " " + base[11:], base[:19] + "z",  # 20 characters, yet not canonical
                       base[:19], base[:10], "", base + "junk", "2024-08-01T00:00:00+00:00"])


def _counts(rng: random.Random, n: int, canonical: bool) -> dict:
    counts: dict = {}
    for _ in range(n):
        ident = rng.choice(IDENTITIES)
        source, name, etype, cat, detail, resources = rng.choice(EVENTS)
        # every GetParameters names its parameters: past the bound of 50 ARNs
        found = rng.choice(resources) if resources and (name == "GetParameters" or rng.random() < 0.9) else ()
        key = (*ident, source, name, rng.choice(ERRORS), rng.choice(REGIONS), etype, cat, detail, found)
        t0, t1 = sorted([_time(rng, canonical), _time(rng, canonical)], key=lambda t: (t is None, t or ""))
        if rng.random() < 0.1:
            t0, t1 = t1, t0  # the per-key code never assumed first <= last
        counts[key] = [rng.randint(1, 500), t0, t1]
    if n >= 1500:  # one role reads 60 parameters, each call naming its own: past the bound of 50 ARNs
        ident, (source, name, etype, cat, detail, resources) = IDENTITIES[1], EVENTS[4]
        for region, found in zip(["us-east-1", "eu-west-1"] * 10, resources):
            counts[(*ident, source, name, None, region, etype, cat, detail, found)] = [2, _time(rng, canonical),
                                                                                       _time(rng, canonical)]
    return counts


COVERAGE = {(ACCOUNT, "us-east-1"): ["2024-08-01T00:00:00Z", "2024-08-20T00:00:00Z"],
            (ACCOUNT, "eu-west-1"): ["2024-08-02 00:00:00.000", "2024-08-29T10:00:00.5Z"],
            ("444455556666", None): [None, "2024-08-30T00:00:00Z"]}


@pytest.mark.parametrize("seed", range(24))
def test_summary_equals_the_per_key_algorithm(catalog, seed):
    rng = random.Random(seed)
    canonical = seed % 3 == 0  # every time canonical: the raw-compare path; else the normalising one
    counts = _counts(rng, [1, 20, 300, 1500, 6000][seed % 5], canonical)
    glob = [None, None, "*app-1*", "dev-0?", "arn:aws:iam::*:role/app-*", "nobody"][seed % 6]
    kw = dict(files=seed, catalog=catalog, principal_glob=glob, notes=("a note",),
              engine="local" if seed % 2 else "athena", coverage=COVERAGE if seed % 4 else None)
    before = {k: list(v) for k, v in counts.items()}
    got = summarise(counts, mapper=EventMapper(catalog), **kw)
    want = _reference(counts, mapper=EventMapper(catalog), **kw)
    assert counts == before  # the counts are not changed
    assert _ordered(got) == _ordered(want)
    assert got.baselines == want.baselines and got.documents == want.documents


def test_the_varied_counts_cover_what_they_claim(catalog):
    rng = random.Random(1)
    got = summarise(_counts(rng, 6000, False), files=1, catalog=catalog)
    assert got.kept_apart and got.unmapped and got.no_iam_events and got.baselines
    assert any(b.denied for b in got.baselines)
    assert any(u.resources for b in got.baselines for u in b.used.values())
    assert any(u.resources_more for b in got.baselines for u in b.used.values())
    assert any(got.documents[arn]["errors"] for arn in got.documents)
    assert {"eu-west-1", "us-east-1"} <= {r for d in got.documents.values() for rs in d["regions"].values() for r in rs}


def test_empty_counts(catalog):
    kw = dict(files=0, catalog=catalog)
    assert _ordered(summarise({}, mapper=EventMapper(catalog), **kw)) == _ordered(
        _reference({}, mapper=EventMapper(catalog), **kw))


def test_a_single_odd_time_is_normalised_like_the_rest(catalog):
    """One key with Athena's form among canonical ones: all keys take the normalising path."""
    ident, ev = IDENTITIES[0], EVENTS[3]
    key = (*ident, ev[0], ev[1], None, "us-east-1", ev[2], ev[3], ev[4], ())
    other = (*ident, ev[0], ev[1], None, "eu-west-1", ev[2], ev[3], ev[4], ())
    counts = {key: [1, "2024-08-01T10:00:00Z", "2024-08-01T11:00:00Z"],
              other: [2, "2024-08-01 09:00:00.000", "2024-08-01 12:00:00.000"]}
    got = summarise(counts, files=1, catalog=catalog, mapper=EventMapper(catalog))
    used = got.baselines[0].used["ec2:describeinstances"]
    assert (used.count, used.first_seen, used.last_seen) == (3, "2024-08-01T09:00:00Z", "2024-08-01T12:00:00Z")
    assert got.window == ("2024-08-01T09:00:00Z", "2024-08-01T12:00:00Z")
    assert got.documents[ident[2]]["regions"]["ec2:describeinstances"] == ["eu-west-1", "us-east-1"]


@pytest.mark.parametrize("side", [1, 2])
@pytest.mark.parametrize("odd", ["{d} 23:59:59Z", "{d}T23:59:59z", "{d}X00:00:00Z", "{d}T23:59:59.1Z",
                                 "{d} 00:00:00.000", "{d}", ""])
def test_one_odd_time_among_canonical_ones(catalog, odd, side):
    """One first (side 1) or last (side 2) time not in the canonical form, among canonical ones, and the
    earliest (latest) of all: it is normalised like the rest. Some forms are 20 characters long too."""
    rng = random.Random(7)
    counts = _counts(rng, 300, True)
    for key in list(counts)[:3]:
        counts[key][side] = odd.format(d="2024-07-31" if side == 1 else "2024-08-30")
    kw = dict(files=1, catalog=catalog)
    got = summarise(counts, mapper=EventMapper(catalog), **kw)
    assert _ordered(got) == _ordered(_reference(counts, mapper=EventMapper(catalog), **kw))
    assert all(t is None or len(t) == 20 and t[10] == "T" and t[19] == "Z" for t in got.window)
