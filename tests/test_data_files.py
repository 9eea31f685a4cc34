"""The curated data files: every entry cited, every action in the catalog, resource types real."""
from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path

import botocore


def data(name: str) -> dict:
    return json.loads(resources.files("iamgate").joinpath(f"data/{name}").read_text())


def test_unobservable_entries_are_cited_known_and_real(catalog):
    doc = data("unobservable.json")
    sources = doc["sources"]
    assert doc["entries"]
    model_dir = Path(botocore.__file__).parent / "data" / "cloudtrail"
    cloudtrail_model = "".join(gzip.decompress(p.read_bytes()).decode() if p.suffix == ".gz" else p.read_text()
                               for p in model_dir.glob("*/service-2.json*"))
    for entry in doc["entries"]:
        assert entry["source"] in sources, entry
        assert entry["reason"] in ("data-event", "not-logged", "permissionless"), entry
        assert catalog.expand(entry["pattern"]).actions, f"{entry['pattern']} matches no current action"
        if entry["reason"] == "data-event" and entry.get("data_event_resource_type"):
            assert entry["data_event_resource_type"].startswith("AWS::"), entry
    # botocore's CloudTrail model documents the data-event resource types we cite
    for rtype in ("AWS::S3::Object", "AWS::DynamoDB::Table", "AWS::Lambda::Function"):
        assert rtype in cloudtrail_model
    assert {"s3:getobject", "dynamodb:putitem", "lambda:invokefunction", "iam:passrole",
            "sts:getcalleridentity"} <= {a for e in doc["entries"] for a in catalog.expand(e["pattern"]).actions}
    # management events must not be here (they are observable)
    listed = {a for e in doc["entries"] for a in catalog.expand(e["pattern"]).actions}
    assert not {"kms:decrypt", "secretsmanager:getsecretvalue", "s3:createbucket"} & listed
