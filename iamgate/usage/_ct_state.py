"""What `usage cloudtrail` has read, so that a later run reads only newer logs (issue 22).

Kept beside the baselines as `<out>/.iamgate-cloudtrail-state.json`. Per source (folder or s3:// prefix),
account and region of CloudTrail's delivery layout (`AWSLogs/[o-org/]<account>/CloudTrail/<region>/
YYYY/MM/DD/`): `through`, the newest delivery day read, and the names of the files read in the last
`margin` days before it. A later run lists and reads only the days from `through - margin` on, and in
them only the files it has not read: a file delivered late (after the run that read its day) is read
by the next run, a file read once is never read again. Files outside the delivery layout are recorded
by name. Athena tables keep the end of the last query (`athena`).

A state file that is not valid is reported, kept beside as `<name>.bad`, and replaced (as the baseline
job's state): the run then reads everything again into fresh baselines (`--replace` implied), so that
nothing is counted twice.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

STATE_FILE = ".iamgate-cloudtrail-state.json"
SCHEMA = "iamgate.cloudtrail-state/v1"
MARGIN_DAYS = 2  # CloudTrail delivers a file within about 15 minutes of its events; two days is ample
_DAY_DIR = re.compile(r"AWSLogs/(?:o-[a-z0-9]+/)?(\d{12})/CloudTrail/([a-z0-9-]+)/(\d{4})(?:/(\d{2})(?:/(\d{2}))?)?/?$")
_FILE = re.compile(r"AWSLogs/(?:o-[a-z0-9]+/)?(\d{12})/CloudTrail/([a-z0-9-]+)/(\d{4})/(\d{2})/(\d{2})/([^/]+)$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _problem(data) -> str:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return "not an iamgate CloudTrail state file"
    if not isinstance(data.get("scopes", {}), dict) or not isinstance(data.get("loose", {}), dict) \
            or not isinstance(data.get("athena", {}), dict):
        return "scopes, loose and athena must be objects"
    for key, scope in data.get("scopes", {}).items():
        if not (isinstance(scope, dict) and isinstance(scope.get("through"), str) and _DAY.match(scope["through"])
                and isinstance(scope.get("recent", {}), dict)
                and all(_DAY.match(d) and isinstance(v, list) and all(isinstance(n, str) for n in v)
                        for d, v in scope.get("recent", {}).items())):
            return f"scopes[{key!r}] is not a scope (through, recent)"
    for key, names in data.get("loose", {}).items():
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            return f"loose[{key!r}] is not a list of names"
    for key, table in data.get("athena", {}).items():
        if not (isinstance(table, dict) and isinstance(table.get("through"), str)):
            return f"athena[{key!r}] has no through"
    return ""


def _shift(day: str, days: int) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()


class ReadState:
    def __init__(self, path: Path, margin: int = MARGIN_DAYS, fresh: bool = False):
        self.path = Path(path)
        self.margin = margin
        self.data: dict = {"schema": SCHEMA, "scopes": {}, "loose": {}, "athena": {}}
        self.warning = ""
        self.invalid = False
        self._sets: dict = {}
        if fresh or not self.path.is_file():
            return
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            problem = _problem(loaded)
            if problem:
                raise ValueError(problem)
        except (OSError, ValueError) as e:
            self.invalid = True
            self.warning = (f"{self.path}: not a valid state file ({e}); kept as {self.path.name}.bad: every log "
                            "is read again and the baselines start afresh")
            try:
                self.path.replace(self.path.with_name(self.path.name + ".bad"))
            except OSError:
                pass
            return
        self.data.update(loaded)

    # -- reading ---------------------------------------------------------------
    @staticmethod
    def _source(source: str) -> str:
        """A folder by its absolute path (`logs` and `./logs/` are one source), an s3:// prefix as given."""
        if source.startswith("s3://"):
            return source.rstrip("/")
        return Path(source).resolve().as_posix()

    def _key(self, source: str, account: str, region: str) -> str:
        return f"{self._source(source)}|{account}|{region}"

    def _names(self, scope: dict, day: str) -> set:
        key = (id(scope), day)
        if key not in self._sets:
            self._sets[key] = set(scope.get("recent", {}).get(day, ()))
        return self._sets[key]

    def keep_dir(self, source: str, path: str) -> bool:
        """False for a delivery-day folder (or year, month) wholly before its scope's `through - margin`."""
        m = _DAY_DIR.search(path.replace("\\", "/"))
        scope = m and self.data["scopes"].get(self._key(source, m.group(1), m.group(2)))
        if not scope:
            return True
        y, mo, d = m.group(3), m.group(4), m.group(5)
        last = dt.date(int(y), 12, 31) if mo is None else (
            dt.date(int(y) + (mo == "12"), 1 if mo == "12" else int(mo) + 1, 1) - dt.timedelta(days=1)
            if d is None else dt.date(int(y), int(mo), int(d)))
        return last.isoformat() >= _shift(scope["through"], -self.margin)

    def wants(self, source: str, ref: str) -> bool:
        """Whether the file is still to be read."""
        m = _FILE.search(ref.replace("\\", "/"))
        if not m:
            return ref not in self._loose(source)
        scope = self.data["scopes"].get(self._key(source, m.group(1), m.group(2)))
        if not scope:
            return True
        day = f"{m.group(3)}-{m.group(4)}-{m.group(5)}"
        if day < _shift(scope["through"], -self.margin):
            return False
        return m.group(6) not in self._names(scope, day)

    def _loose(self, source: str) -> set:
        key = ("loose", source)
        if key not in self._sets:
            self._sets[key] = set(self.data["loose"].get(self._source(source), ()))
        return self._sets[key]

    # -- recording -------------------------------------------------------------
    def mark(self, source: str, ref: str) -> None:
        m = _FILE.search(ref.replace("\\", "/"))
        if not m:
            self._loose(source).add(ref)
            self.data["loose"][self._source(source)] = sorted(self._loose(source))
            return
        day = f"{m.group(3)}-{m.group(4)}-{m.group(5)}"
        scope = self.data["scopes"].setdefault(self._key(source, m.group(1), m.group(2)),
                                               {"through": day, "recent": {}})
        scope["through"] = max(scope["through"], day)
        names = self._names(scope, day)
        names.add(m.group(6))
        scope["recent"][day] = names  # a set until `document()`

    def document(self) -> dict:
        """The state to store: per scope only the days within the margin."""
        out = {"schema": SCHEMA, "margin_days": self.margin, "scopes": {}, "loose": self.data["loose"],
               "athena": self.data["athena"]}
        for key, scope in sorted(self.data["scopes"].items()):
            cutoff = _shift(scope["through"], -self.margin)
            out["scopes"][key] = {"through": scope["through"], "recent": {
                d: sorted(v) for d, v in sorted(scope.get("recent", {}).items()) if d >= cutoff}}
        return out

    # -- Athena ----------------------------------------------------------------
    def athena_through(self, table: str) -> str | None:
        entry = self.data["athena"].get(table)
        return entry["through"] if entry else None

    def athena_read(self, table: str, through: str) -> None:
        prev = self.athena_through(table)
        self.data["athena"][table] = {"through": max(prev, through) if prev else through}
