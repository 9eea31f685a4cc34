"""Reading CloudTrail from S3 holds at most N objects at once (issue 13): downloads run ahead of parsing
only by a bounded queue. Against a local moto S3 server; the peak RSS for 400 x 1 MiB objects is
measured by bench/bench_s3_memory.py, not asserted here."""
from __future__ import annotations

import json
import threading
import time

import pytest

from fixtures.aws.helpers import s3_bucket
from iamgate.usage import _ct_s3, cloudtrail


def test_bounded_map_keeps_order_and_holds_at_most_limit_results():
    lock = threading.Lock()
    produced, consumed, peak = [0], [0], [0]

    def work(i):
        time.sleep(0.001)
        with lock:
            produced[0] += 1
            peak[0] = max(peak[0], produced[0] - consumed[0])
        return i

    out = []
    for r in _ct_s3.bounded_map(work, range(50), limit=3):
        time.sleep(0.003)  # a slow consumer: the producers would run ahead without the bound
        out.append(r)
        with lock:
            consumed[0] += 1
    assert out == list(range(50)) and peak[0] <= 3


def test_a_consumer_that_stops_early_leaves_nothing_running():
    started = []

    def work(i):
        started.append(i)
        return i

    gen = _ct_s3.bounded_map(work, range(1000), limit=4)
    assert next(gen) == 0
    gen.close()
    assert len(started) <= 5


def test_in_flight_is_configurable(monkeypatch):
    monkeypatch.setenv("IAMGATE_S3_IN_FLIGHT", "3")
    assert _ct_s3.in_flight() == 3
    monkeypatch.setenv("IAMGATE_S3_IN_FLIGHT", "lots")
    assert _ct_s3.in_flight() == _ct_s3.S3_IN_FLIGHT


@pytest.fixture
def trail_bucket(monkeypatch):
    with s3_bucket(monkeypatch, "trail-logs") as s3:
        record = {"eventVersion": "1.08", "eventTime": "2026-11-20T10:00:00Z", "eventSource": "s3.amazonaws.com",
                  "eventName": "GetObject", "awsRegion": "us-east-1", "eventType": "AwsApiCall",
                  "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/app/s",
                                   "sessionContext": {"sessionIssuer": {
                                       "type": "Role", "arn": "arn:aws:iam::123456789012:role/app"}}}}
        body = json.dumps({"Records": [record] * 20}).encode()
        for i in range(60):
            s3.put_object(Bucket="trail-logs", Key=f"AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/20/"
                                                   f"123456789012_CloudTrail_us-east-1_20261120T1000Z_{i:03d}.json",
                          Body=body)
        yield "s3://trail-logs/AWSLogs/"


def test_downloads_run_ahead_of_parsing_by_at_most_the_limit(trail_bucket, monkeypatch, catalog):
    monkeypatch.setenv("IAMGATE_S3_IN_FLIGHT", "4")
    lock = threading.Lock()
    fetched, parsed, peak = [0], [0], [0]
    real_fetch, real_scan = _ct_s3.fetch, cloudtrail.scan_bytes

    def counting_fetch(bucket, key, s3=None):
        data = real_fetch(bucket, key, s3)
        with lock:
            fetched[0] += 1
            peak[0] = max(peak[0], fetched[0] - parsed[0])
        return data

    def slow_scan(name, data, opts):
        time.sleep(0.005)
        res = real_scan(name, data, opts)
        with lock:
            parsed[0] += 1
        return res

    monkeypatch.setattr(_ct_s3, "fetch", counting_fetch)
    monkeypatch.setattr(cloudtrail, "scan_bytes", slow_scan)
    summary, errors = cloudtrail.CloudTrailUsage([trail_bucket], jobs=1, catalog=catalog).scan()
    assert errors == [] and summary.files == 60 and summary.events == 1200
    assert peak[0] <= 4, f"{peak[0]} objects were held in memory at once"
