"""`.iamgate.yml`: validated with a JSON Schema; errors name the key path."""
from __future__ import annotations

import datetime as dt
import difflib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from .reference.catalog import glob_match

DEFAULT_FILES = (".iamgate.yml", ".iamgate.yaml")


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class AllowEntry:
    action: str
    reason: str
    principal: str = "*"
    expires: dt.date | None = None

    def expired(self, today: dt.date) -> bool:
        return self.expires is not None and self.expires < today

    def covers_principal(self, principal_ids: tuple[str, ...]) -> bool:
        return any(glob_match(self.principal, p) for p in principal_ids if p)

    def covers(self, principal_ids: tuple[str, ...], action: str) -> bool:
        return glob_match(self.action, action) and self.covers_principal(principal_ids)


@dataclass(frozen=True)
class NamedDeployment:
    """One place the code is deployed (`deployments:`): each principal is resolved and matched there."""
    name: str
    account: str
    parameters: dict = field(default_factory=dict, hash=False)  # CloudFormation parameters
    var_files: tuple[str, ...] = ()  # Terraform .tfvars files (inside the scanned repository)


@dataclass(frozen=True)
class Config:
    path: str | None = None
    fail_on: str = "high"
    baselines: str | None = None
    managed_policies: str | None = None
    data_dir: str | None = None  # a folder holding the AWS support table (`iamgate data update --out`)
    principals: dict = field(default_factory=dict, hash=False)
    stacks: dict = field(default_factory=dict, hash=False)  # template path -> deployed stack name
    parameters: dict = field(default_factory=dict, hash=False)
    allowlist: tuple[AllowEntry, ...] = ()
    unobservable: tuple[str, ...] = ()
    severity: dict = field(default_factory=dict, hash=False)
    disable: tuple[str, ...] = ()
    require_usage_data: bool = False  # fail the gate when no principal has a usage baseline
    exclude: tuple[str, ...] = ()  # path globs (relative to where iamgate runs) not scanned
    require_all_deployments: bool = False  # `require-usage-data: all-deployments`: and every named deployment has one
    deployments: tuple[NamedDeployment, ...] = ()
    min_observation_days: int = 30  # granted and watched for less: too_recent, not unused
    max_idle_days: int = 90  # last seen longer before the baseline's end: unused
    deploy_lag_days: int = 0  # a commit's grant is deployed this long after it (grant history)
    trusted_modules: tuple[str, ...] = ()  # remote Terraform module sources (globs) trusted unread


def parse_days(value, where: str) -> int:
    """A duration in days: `30d` (or `0`); raises ConfigError naming `where`."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9999:
        return value
    text = str(value).strip().lower()
    number = text[:-1] if text.endswith("d") else text
    if not number.isdigit() or len(number) > 4 or (number != "0" and not text.endswith("d")):
        raise ConfigError(f"{where}: {value!r} is not a duration in days (such as 30d)")
    return int(number)


def _schema() -> dict:
    return json.loads(resources.files("iamgate").joinpath("data/schemas/config.schema.json").read_text())


def _dates_to_text(value):
    if isinstance(value, dict):
        return {k: _dates_to_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_to_text(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def parse(data, path: str | None = None) -> Config:
    if data is None:
        data = {}
    data = _dates_to_text(data)
    if isinstance(data, dict) and isinstance(data.get("fail-on"), str):
        data = {**data, "fail-on": data["fail-on"].lower()}  # as `--fail-on` and the Action's input
    import jsonschema  # only when there is a config to validate
    try:
        jsonschema.validate(data, _schema(), format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError as e:
        where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ConfigError(f"{path or 'config'}: {where}: {e.message}") from None
    _check_ids(data, path)
    required = str(data.get("require-usage-data", "false")).lower()
    allow = []
    for entry in data.get("allowlist", []):
        expires = dt.date.fromisoformat(entry["expires"]) if entry.get("expires") else None
        allow.append(AllowEntry(entry["action"], entry["reason"], entry.get("principal", "*"), expires))
    return Config(path=path, fail_on=data.get("fail-on", "high"), baselines=data.get("baselines"),
                  managed_policies=data.get("managed-policies"), data_dir=data.get("data-dir"), principals=dict(data.get("principals", {})),
                  stacks=dict(data.get("stacks", {})),
                  parameters={k: str(v) for k, v in data.get("parameters", {}).items()},
                  allowlist=tuple(allow), unobservable=tuple(data.get("unobservable", ())),
                  severity=dict(data.get("severity", {})), disable=tuple(data.get("disable", ())),
                  require_usage_data=required in ("true", ALL_DEPLOYMENTS),
                  require_all_deployments=required == ALL_DEPLOYMENTS, deployments=_deployments(data, path),
                  trusted_modules=tuple(data.get("trusted-modules", ())), exclude=tuple(data.get("exclude", ())),
                  **{field: parse_days(data[key], f"{path or 'config'}: {key}") for key, field in DURATIONS.items()
                     if key in data})


DURATIONS = {"min-observation": "min_observation_days", "max-idle": "max_idle_days",
             "deploy-lag": "deploy_lag_days"}  # config key -> Config field


ALL_DEPLOYMENTS = "all-deployments"


def _deployments(data: dict, path: str | None) -> tuple[NamedDeployment, ...]:
    out = []
    for name, d in (data.get("deployments") or {}).items():
        files = d.get("var-files", ())
        for i, f in enumerate(files):
            if Path(f).is_absolute() or ".." in Path(f).parts:
                raise ConfigError(f"{path or 'config'}: deployments.{name}.var-files.{i}: {f!r} leaves the "
                                  "repository; give a path inside it")
        out.append(NamedDeployment(name, str(d["account"]), {k: str(v) for k, v in (d.get("parameters") or {}).items()},
                                   tuple(files)))
    return tuple(out)


def _check_ids(data: dict, path: str | None) -> None:
    """A check id that names no check is a typo that would silently leave a check on (or off)."""
    from iamgate.checks import CHECKS
    known = set(CHECKS.all())
    named = [(f"disable.{i}", name) for i, name in enumerate(data.get("disable", ()))]
    named += [(f"severity[{name!r}]", name) for name in data.get("severity", {})]
    for where, name in named:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; the checks are: {', '.join(sorted(known))}"
            raise ConfigError(f"{path or 'config'}: {where}: unknown check id {name!r}{hint}")


def load(path: str | None) -> Config:
    """Load the given config, or `.iamgate.yml` in the working directory if present."""
    if path is None:
        for name in DEFAULT_FILES:
            if Path(name).is_file():
                path = name
                break
        else:
            return Config()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        data = yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 - every scalar a string: `011`, `yes`, `1.10`
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"{path}:{mark.line + 1 if mark else '?'}: invalid YAML: {getattr(e, 'problem', e)}") from None
    return parse(data, path)
