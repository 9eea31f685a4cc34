"""The local cache of managed policy documents (AWS managed and customer managed).

Layout: `<dir>/<account or "aws">/<path><name>.json`, each holding
`{"arn": ..., "version_id": ..., "document": {...}}`. `iamgate managed-policies fetch` and
`iamgate baseline` fill it; `check` reads it offline.

Behind the cache, iamgate ships a dated bundle of the AWS managed policies
(`data/aws_managed_policies.zip`, built by scripts/build_managed_policies.py): an AWS managed policy
missing from the cache is read from there, so `AdministratorAccess` attached by ARN is judged with no
fetch and no credentials. The bundle is opened on the first such lookup only, and each lookup
decompresses one member.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..files import write_bytes_atomic, write_json_atomic

DEFAULT_DIR = ".iamgate/managed-policies"
BUNDLE_NAME = "aws_managed_policies.zip"
BUNDLE_META = "meta.json"
AWS_MANAGED_PREFIX = "arn:aws:iam::aws:policy/"


@dataclass(frozen=True)
class Found:
    document: dict
    origin: str  # "cache", or "bundle" (iamgate's offline copy)


@dataclass(frozen=True)
class BundleInfo:
    date: str
    source: str
    count: int


class Bundle:
    """The shipped AWS managed policies: a zip with one member per policy, read member by member."""

    def __init__(self, file):
        self._zip = zipfile.ZipFile(file)
        meta = json.loads(self._zip.read(BUNDLE_META))
        self.info = BundleInfo(str(meta["date"]), str(meta["source"]), int(meta["count"]))

    def get(self, arn: str) -> dict | None:
        member = bundle_member(arn)
        if member is None:
            return None
        try:
            return json.loads(self._zip.read(member))["document"]
        except KeyError:
            return None


def bundle_member(arn: str) -> str | None:
    if not arn.startswith(AWS_MANAGED_PREFIX):
        return None
    rel = arn[len(AWS_MANAGED_PREFIX):].strip("/")
    return f"policy/{rel}.json" if rel and ".." not in rel.split("/") else None


@lru_cache(maxsize=1)
def bundle() -> Bundle | None:
    try:
        return Bundle(resources.files("iamgate").joinpath(f"data/{BUNDLE_NAME}").open("rb"))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


@lru_cache(maxsize=1)
def _bundle_names() -> dict[str, str]:
    b = bundle()
    if b is None:
        return {}
    out: dict[str, str] = {}
    for member in b._zip.namelist():
        if member.startswith("policy/") and member.endswith(".json"):
            rel = member[len("policy/"):-len(".json")]
            out.setdefault(rel.rsplit("/", 1)[-1], AWS_MANAGED_PREFIX + rel)
    return out


def aws_managed_arn(name: str) -> str | None:
    """The ARN of the AWS managed policy with this name (`AdministratorAccess`), from the bundle; None
    when the bundle has no such policy (a customer managed one, or one newer than the bundle)."""
    return _bundle_names().get(name)


def bundle_info() -> BundleInfo | None:
    b = bundle()
    return b.info if b else None


def bundle_use(principals) -> dict:
    """For the report: the AWS managed policies read from the bundle, with its date and source."""
    arns = sorted({pol.managed_arn for p in principals for pol in p.policies if pol.managed_origin == "bundle"})
    info = bundle_info() if arns else None
    return {"date": info.date, "source": info.source, "policies": arns} if info else {}


def write_bundle(path: str | Path, policies: dict, source: str, date: str) -> int:
    """The bundle from {ARN: {"version", "deprecated", "document", ...}}; deprecated policies are left out."""
    stamp = (1980, 1, 1, 0, 0, 0)  # fixed: the same input gives the same bytes
    buf = io.BytesIO()
    count = 0
    with zipfile.ZipFile(buf, "w") as z:
        members = []
        for arn, entry in sorted(policies.items()):
            member = bundle_member(arn)
            if member is None or entry.get("deprecated") or not isinstance(entry.get("document"), dict):
                continue
            body = {"arn": arn, "version_id": entry.get("version"), "document": entry["document"]}
            members.append((member, json.dumps(body, separators=(",", ":"), sort_keys=True).encode()))
        meta = {"source": source, "date": date, "count": len(members),
                "note": "AWS managed policy documents (default versions), for offline `check`; "
                        "the managed-policy cache wins over this bundle"}
        for name, data in [(BUNDLE_META, json.dumps(meta, indent=1, sort_keys=True).encode()), *members]:
            info = zipfile.ZipInfo(name, stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data, compresslevel=9)
            count += name != BUNDLE_META
    write_bytes_atomic(path, buf.getvalue())
    return count


def policy_file(directory: str | Path, arn: str) -> Path | None:
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith("policy/"):
        return None
    account = parts[4] or "aws"
    if account != "aws" and not (len(account) == 12 and account.isdigit()):  # the ARN is the PR author's text
        return None
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

    def lookup(self, arn: str) -> Found | None:
        """The document from the cache, else (AWS managed policies) from the shipped bundle."""
        doc = self.get(arn)
        if doc is not None:
            return Found(doc, "cache")
        b = bundle() if arn.startswith(AWS_MANAGED_PREFIX) else None
        doc = b.get(arn) if b else None
        return Found(doc, "bundle") if doc is not None else None

    def put(self, arn: str, document: dict, version_id: str | None = None) -> Path:
        path = policy_file(self.directory, arn)
        if path is None:
            raise ValueError(f"not a managed policy ARN: {arn}")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"arn": arn, "version_id": version_id, "document": document})
        return path
