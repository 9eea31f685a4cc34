"""Issue 18: workers read a batch of files and merge its counts before the parent sees them. The merged
counts equal the file-by-file merge key for key and in the same order (ties in the summary's "most
common" lists keep their order), and a pooled scan of the corpus gives the summary of a one-process scan."""
from __future__ import annotations

import os

from conftest import corpus_path

from iamgate.usage import cloudtrail as ct
from iamgate.usage._ct_agg import merge_counts
from iamgate.usage._ct_map import EventMapper
from iamgate.usage._ct_read import LOG_SUFFIXES, ReadOptions, scan_path

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
        results += ct.scan_batch(files[i:i + 7], opts)
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
