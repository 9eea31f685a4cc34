"""The Action's inputs (INPUT_* variables, see action.yml) and the pull request from the event file."""
from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

FAIL_ON = ("info", "low", "medium", "high", "critical", "never")
CONFIG_FROM = ("base", "head")


class InputError(Exception):
    pass


def parse_bool(name: str, value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    v = value.strip().lower()
    if v in ("true", "yes", "1", "on"):
        return True
    if v in ("false", "no", "0", "off"):
        return False
    raise InputError(f"input {name}: expected true or false, not {value!r}")


def _required(value: str | None) -> bool | str:
    """`require-usage-data`: true, false, or all-deployments (every named deployment has a baseline)."""
    if value is not None and value.strip().lower() == "all-deployments":
        return "all-deployments"
    try:
        return parse_bool("require-usage-data", value, False)
    except InputError:
        raise InputError(f"input require-usage-data: expected true, false or all-deployments, not {value!r}") from None


def parse_list(value: str | None) -> list[str]:
    """One item per line; a line may hold several, separated by spaces (quote paths with spaces)."""
    items: list[str] = []
    for line in (value or "").splitlines():
        try:
            items += shlex.split(line)
        except ValueError as e:
            raise InputError(f"cannot split {line!r}: {e}") from None
    return items


def _days(env, var: str, name: str) -> str | None:
    """A duration input such as `30d`, checked here; empty: the configuration's (or the default)."""
    value = (env.get(var) or "").strip()
    if not value:
        return None
    from ..config import ConfigError, parse_days
    try:
        parse_days(value, f"input {name}")
    except ConfigError as e:
        raise InputError(str(e)) from None
    return value


def _choice(env, var: str, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(var) or default).strip().lower()
    if value not in choices:
        raise InputError(f"input {name}: {value!r} is not one of {', '.join(c for c in choices if c)}")
    return value


@dataclass(frozen=True)
class Inputs:
    paths: tuple[str, ...]
    baselines: tuple[str, ...]
    config: str | None
    config_from: str  # base | head: which commit the gate's own configuration is read from on a PR
    data_dir: str | None  # AWS's per-action support data (`iamgate data update --out DIR`)
    fail_on: str | None  # None: the configuration's `fail-on` (trusted like the rest of it)
    soft_fail: bool
    diff_only: bool
    require_usage_data: bool | str  # True, False or "all-deployments"
    comment: str
    sarif_file: str | None
    annotations: bool
    token: str | None
    # the judge's time rules (`30d`); None: the configuration's
    min_observation: str | None = None
    max_idle: str | None = None
    deploy_lag: str | None = None
    report_json_version: int = 2  # the report-json contract; 1 is kept for one release

    @classmethod
    def from_env(cls, env) -> "Inputs":
        return cls(paths=tuple(parse_list(env.get("INPUT_PATHS")) or ["."]),
                   baselines=tuple(parse_list(env.get("INPUT_BASELINES"))),
                   config=(env.get("INPUT_CONFIG") or "").strip() or None,
                   config_from=_choice(env, "INPUT_CONFIG_FROM", "config-from", "base", CONFIG_FROM),
                   # $IAMGATE_DATA_DIR on the step (the older way) is trusted only as far as the input
                   data_dir=(env.get("INPUT_DATA_DIR") or env.get("IAMGATE_DATA_DIR") or "").strip() or None,
                   fail_on=_choice(env, "INPUT_FAIL_ON", "fail-on", "", ("", *FAIL_ON)) or None,
                   soft_fail=parse_bool("soft-fail", env.get("INPUT_SOFT_FAIL"), False),
                   diff_only=parse_bool("diff-only", env.get("INPUT_DIFF_ONLY"), True),
                   require_usage_data=_required(env.get("INPUT_REQUIRE_USAGE_DATA")),
                   comment=_choice(env, "INPUT_COMMENT", "comment", "update", ("update", "off")),
                   sarif_file=(env.get("INPUT_SARIF_FILE") or "").strip() or None,
                   annotations=parse_bool("annotations", env.get("INPUT_ANNOTATIONS"),
                                          env.get("GITHUB_ACTIONS") == "true"),
                   token=(env.get("INPUT_GITHUB_TOKEN") or "").strip() or None,
                   min_observation=_days(env, "INPUT_MIN_OBSERVATION", "min-observation"),
                   max_idle=_days(env, "INPUT_MAX_IDLE", "max-idle"),
                   deploy_lag=_days(env, "INPUT_DEPLOY_LAG", "deploy-lag"),
                   report_json_version=int(_choice(env, "INPUT_REPORT_JSON_VERSION", "report-json-version", "2",
                                                   ("1", "2"))))


@dataclass(frozen=True)
class PullRequest:
    number: int
    head_sha: str | None
    base_sha: str | None
    base_ref: str | None
    head_repo: str | None

    @classmethod
    def from_event(cls, path: str | None) -> "PullRequest | None":
        if not path or not os.path.isfile(path):
            return None
        try:
            event = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(f"GITHUB_EVENT_PATH {path}: {e}") from None
        pr = event.get("pull_request") if isinstance(event, dict) else None
        if not isinstance(pr, dict) or not isinstance(pr.get("number"), int):
            return None
        head, base = pr.get("head") or {}, pr.get("base") or {}
        return cls(pr["number"], head.get("sha") or None, base.get("sha") or None, base.get("ref"),
                   (head.get("repo") or {}).get("full_name"))
