"""The local cache of managed policy documents (AWS managed and customer managed).

Layout: `<dir>/<account or "aws">/<path><name>.json`, each holding
`{"arn": ..., "version_id": ..., "document": {...}}`. `iamgate managed-policies fetch` and
`iamgate baseline` fill it; `check` reads it offline.
"""
from __future__ import annotations

import json
from pathlib import Path

from .files import write_json_atomic

DEFAULT_DIR = ".iamgate/managed-policies"


def policy_file(directory: str | Path, arn: str) -> Path | None:
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith("policy/"):
        return None
    account = parts[4] or "aws"
    rel = parts[5][len("policy/"):].strip("/")
    if not rel or ".." in rel.split("/"):
        return None
    return Path(directory, account, rel + ".json")


def normalise_arn(value: str) -> str | None:
    """A managed policy reference as an ARN; bare AWS managed names are not guessed."""
    return value if value.startswith("arn:") and ":policy/" in value else None


class ManagedPolicyCache:
    def __init__(self, directory: str | Path | None):
        self.directory = Path(directory) if directory else Path(DEFAULT_DIR)

    def get(self, arn: str):
        path = policy_file(self.directory, arn)
        if path is None or not path.is_file():
            return None
        try:
            return json.loads(path.read_text()).get("document")
        except (OSError, ValueError, AttributeError):
            return None

    def put(self, arn: str, document: dict, version_id: str | None = None) -> Path:
        path = policy_file(self.directory, arn)
        if path is None:
            raise ValueError(f"not a managed policy ARN: {arn}")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"arn": arn, "version_id": version_id, "document": document})
        return path
