"""Issue 18: workers read a batch of files and merge its counts before the parent sees them. The merged
counts equal the file-by-file merge key for key and in the same order (ties in the summary's "most
common" lists keep their order), and a pooled scan of the corpus gives the summary of a one-process scan."""
from __future__ import annotations

import os

import pytest

from conftest import corpus_path

from iamgate.usage import cloudtrail as ct
from iamgate.usage._ct_agg import merge_counts
from iamgate.usage._ct_map import EventMapper
from iamgate.usage._ct_read import LOG_SUFFIXES, ReadOptions, scan_bytes, scan_path

STRATUS = ("e2e", "DataDog", "stratus-red-team")


def _logs() -> list[str]:
    roots = (corpus_path("cloudtrail"), corpus_path(*STRATUS, "docs", "detonation-logs"))
    return sorted(os.path.join(d, n) for root in roots for d, _, names in os.walk(root) for n in names
                  if n.endswith(LOG_SUFFIXES))


def test_batch_counts_equal_the_file_by_file_merge(catalog):
    opts = ReadOptions(detail_events=EventMapper(catalog).detail_events(), resources=True)
    files = _logs()
    one: dict = {}
    for p in files:
        r = scan_path(p, opts)
        if not r.skipped:
            merge_counts(one, r.counts)
    batched: dict = {}
    results = []
    for i in range(0, len(files), 7):
        results += ct.scan_many(files[i:i + 7], opts)
    for r in results:
        if not r.skipped:
            merge_counts(batched, r.counts)
    assert [r.name for r in results] == files  # one result per file, in order: errors and notes stay per file
    assert len(one) > 100
    assert list(batched.items()) == list(one.items())
    # each file keeps its own events, errors and coverage; only the counts moved
    assert [(r.events, r.errors, r.coverage) for r in results] == [
        (r.events, r.errors, r.coverage) for r in (scan_path(p, opts) for p in files)]


def test_pooled_corpus_scan_equals_one_process(monkeypatch, catalog):
    sources = [str(corpus_path("cloudtrail")), str(corpus_path(*STRATUS, "docs", "detonation-logs"))]
    alone, errors_alone = ct.CloudTrailUsage(sources, jobs=1, catalog=catalog).scan()
    monkeypatch.setattr(ct, "IN_PROCESS_BYTES", 0)
    pooled, errors = ct.CloudTrailUsage(sources, jobs=2, catalog=catalog).scan()
    assert pooled == alone
    assert errors == errors_alone


def test_what_requests_name_is_remembered_across_files_and_forgotten_per_scan(catalog):
    """The resources a distinct request names are remembered from file to file; a scan starts from nothing
    (its workers fork empty), and a second scan in the same process reads exactly what the first did."""
    from iamgate.usage import _ct_read
    sources = [str(corpus_path("cloudtrail")), str(corpus_path(*STRATUS, "docs", "detonation-logs"))]
    first, _ = ct.CloudTrailUsage(sources, jobs=1, catalog=catalog).scan()
    assert _ct_read._FOUND  # remembered while the scan read its files
    _ct_read._FOUND[("made-up.amazonaws.com", None, None, None, None)] = (("thing", "arn:aws:x:::y"),)
    second, _ = ct.CloudTrailUsage(sources, jobs=1, catalog=catalog).scan()
    assert ("made-up.amazonaws.com", None, None, None, None) not in _ct_read._FOUND
    assert second == first


def _delivery_files(tmp_path) -> list[str]:
    """Files in CloudTrail's delivery layout, most plain (every record timed, read straight into the batch's
    counts), some not: a placeholder time, a `@timestamp` record, one in another layout; records of one key
    spread over files out of time order, so that first and last times cross files."""
    import gzip
    import json

    from test_resources import record, scenario
    base = tmp_path / "AWSLogs" / "111122223333" / "CloudTrail"
    recs = scenario()
    batches = [recs[0:10], recs[10:25], recs[25:], recs[3:8] + recs[40:]]
    odd = [dict(r, eventTime="redacted") if i == 1 else r for i, r in enumerate(recs[5:12])]
    stamped = [{k: v for k, v in r.items() if k != "eventTime"} | {"@timestamp": "2026-11-04T09:00:00Z"}
               for r in recs[20:23]]
    late = [record("s3.amazonaws.com", "GetObject", {"bucketName": "orders-exports", "key": "a/b"}, i=59)]
    out = []
    for n, (region, rs) in enumerate([("us-east-1", batches[2]), ("us-east-1", batches[0]), ("eu-west-1", odd),
                                      ("us-east-1", batches[1]), ("us-east-1", stamped), ("eu-west-1", late),
                                      ("us-east-1", batches[3])]):
        day = base / region / "2026" / "11" / "01"
        day.mkdir(parents=True, exist_ok=True)
        path = day / f"111122223333_CloudTrail_{region}_20261101T10{n:02d}Z_x.json.gz"
        path.write_bytes(gzip.compress(json.dumps({"Records": rs}).encode()))
        out.append(str(path))
    elsewhere = tmp_path / "copied" / "logs.json"
    elsewhere.parent.mkdir()
    elsewhere.write_text(json.dumps({"Records": batches[0]}))
    return out[:3] + [str(elsewhere)] + out[3:]


@pytest.mark.parametrize("window", [(None, None), ("2026-11-02T00:00:00Z", "2026-11-06T00:00:00Z")])
def test_a_batch_counts_each_file_as_reading_it_alone_does(tmp_path, catalog, window):
    """Plain files are counted straight into the batch's counts and their coverage is their span; the others
    are counted alone and merged. Per file and merged, that equals reading each file alone (scan_bytes)."""
    opts = ReadOptions(*window, detail_events=EventMapper(catalog).detail_events(), resources=True)
    files = _delivery_files(tmp_path)
    alone = []
    for p in files:
        with open(p, "rb") as f:
            alone.append(scan_bytes(p, f.read(), opts))
    batched = ct.scan_many(files, opts)
    one: dict = {}
    for r in alone:
        merge_counts(one, r.counts)
    assert [r.name for r in batched] == files
    assert [(r.events, r.filtered, r.errors, r.problems, r.coverage) for r in batched] == [
        (r.events, r.filtered, r.errors, r.problems, r.coverage) for r in alone]
    assert all(r.counts == {} for r in batched[:-1])
    assert list(batched[-1].counts.items()) == list(one.items())  # the same keys, times and order
    assert sum(r.events for r in batched) == sum(c for c, _, _ in one.values()) > 0
    assert sum(bool(r.coverage) for r in batched) >= 5
    if window[0]:
        assert 0 < sum(r.filtered for r in batched) < sum(r.events + r.filtered for r in batched)
