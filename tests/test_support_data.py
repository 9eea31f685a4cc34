"""The shipped per-action support table: derived from AWS's service reference, dated, rebuildable."""
import gzip
import json
from pathlib import Path

import pytest

import iamgate
from iamgate.reference import support

SHARED = Path(__file__).resolve().parents[2] / "shared" / "service-reference"


def test_shipped_table_is_dated_and_cited():
    s = support.shipped()
    assert s.date == "2026-02-13"
    assert "servicereference" in s.source
    assert len(s.listed) > 20000


def test_known_flags():
    s = support.shipped()
    assert "sqs:addpermission" in s.generation and "sqs:addpermission" in s.last_accessed
    assert "cloudwatch:putmetricalarm" not in s.generation and "cloudwatch:putmetricalarm" in s.last_accessed
    assert "iam:passrole" in s.listed and "iam:passrole" not in s.generation | s.last_accessed
    assert "s3:getobject" not in s.generation


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/service-reference is absent")
def test_shipped_table_is_the_one_the_script_builds():
    table = support.table_from_folder(SHARED, "2026-02-13", support.shipped().source)
    assert support.encode(table) == (Path(iamgate.__file__).parent / "data" / support.FILE_NAME).read_bytes()


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/service-reference is absent")
def test_every_flag_agrees_with_the_service_reference():
    s = support.shipped()
    for path in SHARED.glob("*.json"):
        doc = json.loads(path.read_text())
        if "Actions" not in doc:
            continue
        for a in doc["Actions"]:
            key = f"{doc['Name'].lower()}:{a['Name'].lower()}"
            flags = a.get("SupportedBy", {})
            assert (key in s.generation) == (flags.get(support.GENERATION_FLAG) is True), key
            assert (key in s.last_accessed) == (flags.get(support.LAST_ACCESSED_FLAG) is True), key


def test_load_prefers_a_newer_cache_and_ignores_a_broken_or_older_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    support._load_default.cache_clear()
    cache = support.cache_dir() / support.FILE_NAME
    table = support.table_from_services({"demo": {"Name": "demo", "Actions": [
        {"Name": "Run", "SupportedBy": {support.GENERATION_FLAG: True, support.LAST_ACCESSED_FLAG: False}}]}},
        "2099-01-01", "test")
    support.write_table(cache, table)
    try:
        assert support.load().date == "2099-01-01"
        assert support.load().generation == {"demo:run"}
        support._load_default.cache_clear()
        cache.write_bytes(b"garbage")
        assert support.load().origin == "shipped"
        support._load_default.cache_clear()
        support.write_table(cache, {**table, "date": "2000-01-01"})
        assert support.load().origin == "shipped"
    finally:
        support._load_default.cache_clear()


def test_a_given_folder_must_hold_a_table(tmp_path):
    with pytest.raises(support.SupportDataError):
        support.load(tmp_path)
    (tmp_path / support.FILE_NAME).write_bytes(gzip.compress(b'{"schema": "other"}'))
    with pytest.raises(support.SupportDataError, match="not a"):
        support.load(tmp_path)


def test_a_malformed_supported_by_counts_as_supported_by_nothing():
    table = support.table_from_services({"demo": {"Name": "demo", "Actions": [
        {"Name": "Odd", "SupportedBy": ["IAM Access Analyzer Policy Generation"]},
        {"Name": "Run", "SupportedBy": {support.GENERATION_FLAG: True}}]}}, "2099-01-01", "test")
    parsed = support.parse(support.encode(table), "test")
    assert parsed.listed == {"demo:odd", "demo:run"} and parsed.generation == {"demo:run"}
