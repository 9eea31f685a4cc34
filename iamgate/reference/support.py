"""AWS's per-action support data: which usage source can see which action.

Every action in AWS's Service Authorization Reference JSON carries
`SupportedBy: {"IAM Access Analyzer Policy Generation": bool, "IAM Action Last Accessed": bool}`.
iamgate ships a compact, dated table derived from it (`data/action_support.json.gz`), and
`iamgate data update` keeps a newer one in the user cache. `load()` takes the newest it finds:
a given folder, then the user cache, then the shipped table.
"""
from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..files import write_bytes_atomic

SCHEMA = "iamgate.action-support/v1"
FILE_NAME = "action_support.json.gz"
ENDPOINT = "https://servicereference.us-east-1.amazonaws.com/"
ENV_DATA_DIR = "IAMGATE_DATA_DIR"  # the folder `check --data-dir` names, for the GitHub Action's step env
GENERATION_FLAG = "IAM Access Analyzer Policy Generation"
LAST_ACCESSED_FLAG = "IAM Action Last Accessed"
# Groups in the file: which flags are true for the actions listed under each.
_GROUPS = {"both": (True, True), "generation": (True, False), "last-accessed": (False, True), "neither": (False, False)}


class SupportDataError(ValueError):
    """A support table that cannot be read or does not have the expected shape."""


@dataclass(frozen=True)
class ActionSupport:
    """Lowercase `service:action` sets, by what AWS says each source can see."""
    date: str  # the day the service reference was read, YYYY-MM-DD
    source: str  # where it was read from
    origin: str  # "shipped", or the path of the table used
    listed: frozenset[str] = field(repr=False)
    generation: frozenset[str] = field(repr=False)  # reported by Access Analyzer policy generation
    last_accessed: frozenset[str] = field(repr=False)  # tracked by IAM action last accessed
    services: frozenset[str] = field(default=frozenset(), repr=False)

    def describe(self) -> dict:
        return {"date": self.date, "source": self.source, "origin": self.origin, "actions": len(self.listed)}


# -- building the table from service reference files ------------------------------------------

def table_from_services(services: dict[str, dict], date: str, source: str) -> dict:
    """The compact table from parsed service files ({prefix: the service's JSON})."""
    out: dict[str, dict[str, str]] = {}
    for prefix in sorted(services):
        doc = services[prefix]
        name = str(doc.get("Name") or prefix).lower()
        groups: dict[str, list[str]] = {g: [] for g in _GROUPS}
        for action in doc.get("Actions") or ():
            if not isinstance(action, dict) or not action.get("Name"):
                continue
            supported = action.get("SupportedBy")
            supported = supported if isinstance(supported, dict) else {}  # malformed: supported by nothing
            flags = (supported.get(GENERATION_FLAG) is True, supported.get(LAST_ACCESSED_FLAG) is True)
            group = next(g for g, f in _GROUPS.items() if f == flags)
            groups[group].append(str(action["Name"]).lower())
        out[name] = {g: " ".join(sorted(set(v))) for g, v in groups.items() if v}
    return {"schema": SCHEMA, "date": date, "source": source,
            "flags": [GENERATION_FLAG, LAST_ACCESSED_FLAG], "services": out}


def table_from_folder(folder: Path, date: str, source: str) -> dict:
    """The table from a folder of `<prefix>.json` files such as ../shared/service-reference."""
    services = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SupportDataError(f"{path}: {exc}") from None
        if isinstance(doc, dict) and "Actions" in doc:
            services[path.stem] = doc
    if not services:
        raise SupportDataError(f"{folder}: no service reference files")
    return table_from_services(services, date, source)


def encode(table: dict) -> bytes:
    # mtime=0: the same table always gives the same bytes
    return gzip.compress(json.dumps(table, separators=(",", ":"), sort_keys=True).encode(), 9, mtime=0)


def write_table(path: Path, table: dict) -> None:
    write_bytes_atomic(path, encode(table))


# -- loading ------------------------------------------------------------------------------------

def parse(raw: bytes, origin: str) -> ActionSupport:
    try:
        table = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    except (OSError, ValueError, EOFError) as exc:
        raise SupportDataError(f"{origin}: not a support table ({exc})") from None
    if not isinstance(table, dict) or table.get("schema") != SCHEMA or not isinstance(table.get("services"), dict):
        raise SupportDataError(f"{origin}: not a {SCHEMA} table")
    listed: set[str] = set()
    generation: set[str] = set()
    last_accessed: set[str] = set()
    for service, groups in table["services"].items():
        if not isinstance(groups, dict):
            raise SupportDataError(f"{origin}: service {service!r} is malformed")
        for group, names in groups.items():
            if group not in _GROUPS or not isinstance(names, str):
                raise SupportDataError(f"{origin}: service {service!r} has a malformed group {group!r}")
            actions = [f"{service}:{n}" for n in names.split()]
            listed.update(actions)
            gen, la = _GROUPS[group]
            if gen:
                generation.update(actions)
            if la:
                last_accessed.update(actions)
    return ActionSupport(str(table.get("date", "")), str(table.get("source", "")), origin,
                         frozenset(listed), frozenset(generation), frozenset(last_accessed),
                         frozenset(table["services"]))


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "iamgate" / "data"


def shipped() -> ActionSupport:
    return parse(resources.files("iamgate").joinpath(f"data/{FILE_NAME}").read_bytes(), "shipped")


def _read(path: Path) -> ActionSupport:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SupportDataError(f"{path}: {exc.strerror or exc}") from None
    return parse(raw, str(path))


def load(data_dir: str | Path | None = None) -> ActionSupport:
    """The newest table: a given folder (or $IAMGATE_DATA_DIR; an error if unreadable), else the user cache,
    else the shipped one. A cached table older than the shipped one is passed over."""
    if data_dir is None:
        data_dir = os.environ.get(ENV_DATA_DIR) or None
    if data_dir is not None:
        path = Path(data_dir) / FILE_NAME
        try:
            stamp = path.stat().st_mtime_ns
        except OSError as exc:
            raise SupportDataError(f"{path}: {exc.strerror or exc} (write it with `iamgate data update --out "
                                   f"{data_dir}`)") from None
        return _read_given(str(path), stamp)
    return _load_default()


@lru_cache(maxsize=4)
def _read_given(path: str, mtime_ns: int) -> ActionSupport:
    return _read(Path(path))


@lru_cache(maxsize=1)
def _load_default() -> ActionSupport:
    ours = shipped()
    cached = cache_dir() / FILE_NAME
    if cached.is_file():
        try:
            theirs = _read(cached)
        except SupportDataError:
            return ours
        if theirs.date >= ours.date:
            return theirs
    return ours
