"""The gate's own configuration on a pull request, read from the base commit.

The PR's author controls every file in the checkout, including `.iamgate.yml`, the managed-policy
cache and the rest of `.iamgate/`. With `config-from: base` (the default) these come from the
base commit instead: read with `git ls-tree`/`git cat-file` (no checkout, so no PR symlink is
followed and no filter or hook runs) into a folder outside the workspace, and handed to
`iamgate check` as explicit paths (`--config`, `--managed-policies`, `--data-dir`, `--baselines`).
A path that no commit tracks (a separate checkout of the baselines branch, a file a workflow step
wrote) is not the PR's and is used as it is.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import config as config_mod
from ..diff import git, materialise
from ..errors import UsageError
from ..repo import repo_root
from .inputs import InputError, Inputs, PullRequest

DATA_DIR = ".iamgate"  # the managed-policy cache and any other data iamgate keeps in the repository
DEFAULT_MANAGED = ".iamgate/managed-policies"


@dataclass(frozen=True)
class Trusted:
    """What `iamgate check` should read instead of the workspace's copies."""
    source: str  # base | head
    commit: str | None = None
    args: tuple[str, ...] = ()  # --config/--managed-policies/--baselines pointing at the base's copies
    config_path: str | None = None  # the config file in force (for `fix`), None for the defaults
    base_config: config_mod.Config | None = None  # at the fork point: what the PR's changes are measured from
    head_config: config_mod.Config | None = None
    head_problem: str = ""  # the PR's config does not load: why
    changed_data: tuple[str, ...] = field(default=())  # trusted data files the PR changes


def _tracked(root: Path, commit: str, spec: str) -> bool:
    """Whether `commit` has anything at `spec`, under it, or a non-folder where one of its parents is."""
    if git(["ls-tree", "-r", "--full-tree", "--name-only", commit, "--", spec], root, check=False).stdout.strip():
        return True
    parts = spec.split("/")
    for i in range(1, len(parts)):
        entry = git(["ls-tree", "--full-tree", commit, "--", "/".join(parts[:i])], root, check=False).stdout
        if entry.strip() and entry.split("\t", 1)[0].split(" ")[1:2] != ["tree"]:
            return True
    return False


def _repo_spec(root: Path, path: str) -> str | None:
    """`path` (relative to the working directory) relative to the repository root, or None outside it."""
    absolute = Path(os.path.normpath(Path.cwd() / path))
    try:
        return absolute.relative_to(root).as_posix() or "."
    except ValueError:
        return None


def _inside(path: str, root: Path) -> bool:
    real = Path(os.path.realpath(path))
    return real == root.resolve() or root.resolve() in real.parents


def base_available(root: Path | None, sha: str) -> bool:
    return root is not None and git(["cat-file", "-e", f"{sha}^{{commit}}"], root, check=False).returncode == 0


def _load(path: str | None, what: str, dest: Path | None = None, commit: str = "") -> config_mod.Config:
    try:
        return config_mod.load(path) if path else config_mod.Config()
    except config_mod.ConfigError as e:
        message = str(e).replace(f"{dest}{os.sep}", f"{commit[:12]}:") if dest else str(e)
        raise InputError(f"the {what} configuration: {message}") from None


def _config_name(inputs: Inputs, exists) -> str | None:
    if inputs.config:
        return inputs.config
    return next((n for n in config_mod.DEFAULT_FILES if exists(n)), None)


def resolve(inputs: Inputs, pr: PullRequest | None, tmp_parent: str | None) -> Trusted:
    """The configuration the gate runs with. Without a pull request (a push, a local run) the
    checkout is the trusted tree, and nothing changes."""
    head_name = _config_name(inputs, lambda n: Path(n).is_file())
    if pr is None or not pr.base_sha:
        return Trusted("head", config_path=head_name)
    head_problem, head_cfg = "", None
    root = repo_root()
    if head_name and not _inside(head_name, root or Path.cwd()):
        # a symlink the PR added: its target (a runner's file) must not be read, nor quoted in an error
        head_problem = f"{head_name}: its real path leaves the workspace, so it is not read"
    else:
        try:
            head_cfg = config_mod.load(head_name) if head_name else config_mod.Config()
        except config_mod.ConfigError as e:
            head_problem = str(e)
    if inputs.config_from == "head":
        if head_problem:
            raise InputError(f"the configuration: {head_problem}")
        before = None
        if base_available(root, pr.base_sha):
            fork = fork_point(root, pr.base_sha)
            before = _base_config(root, fork, inputs, Path(tempfile.mkdtemp(prefix="iamgate-base-config-",
                                                                            dir=tmp_parent)))
        return Trusted("head", pr.base_sha, config_path=head_name, base_config=before, head_config=head_cfg)
    if not base_available(root, pr.base_sha):
        raise InputError(f"config-from: base needs the base commit {pr.base_sha[:12]} in the clone, to read the "
                         "gate's configuration from it rather than from this pull request; check out with "
                         "`fetch-depth: 0`, or set `config-from: head` to trust the pull request's configuration")
    dest = Path(tempfile.mkdtemp(prefix="iamgate-base-config-", dir=tmp_parent))
    try:
        return _from_base(root, pr.base_sha, inputs, dest, head_cfg, head_problem)
    except UsageError as e:
        raise InputError(str(e)) from None


def fork_point(root: Path, base: str) -> str:
    """Where the PR branched from the base: what the PR itself changes is measured from there (a
    rule the base branch added since is not the PR's weakening). With the merge commit checked
    out, that is the base itself."""
    got = git(["merge-base", base, "HEAD"], root, check=False)
    return got.stdout.strip() if got.returncode == 0 and got.stdout.strip() else base


def _base_config(root: Path, commit: str, inputs: Inputs, dest: Path) -> config_mod.Config:
    name = _base_config_file(root, commit, inputs, dest)
    return _load(str(dest / name) if name else None, "base commit's", dest, commit)


def _base_config_file(root: Path, commit: str, inputs: Inputs, dest: Path) -> str | None:
    """Materialise the base's config file into `dest`; its name relative to `dest`, or None."""
    for name in ([inputs.config] if inputs.config else list(config_mod.DEFAULT_FILES)):
        spec = _repo_spec(root, name)
        if spec is None:  # outside the repository: no commit holds it
            if inputs.config:
                return None
            continue
        if materialise(root, commit, [spec], dest) and (dest / spec).is_file():
            return spec
    return None


def _from_base(root: Path, commit: str, inputs: Inputs, dest: Path, head_cfg, head_problem: str) -> Trusted:
    args: list[str] = []
    config_file = _base_config_file(root, commit, inputs, dest)
    outside_config = inputs.config and _repo_spec(root, inputs.config) is None
    if config_file:
        args += ["--config", str(dest / config_file)]
    elif inputs.config and not outside_config:
        raise InputError(f"input config: {inputs.config} is not in the base commit {commit[:12]}; the gate's "
                         "configuration is read from there (set `config-from: head` to use the pull request's)")
    config_path = str(dest / config_file) if config_file else (inputs.config if outside_config else None)
    base_cfg = _load(config_path, "base commit's", dest, commit)
    if outside_config:
        args += ["--config", inputs.config]
    elif not config_file:  # the base has none: the defaults, never the PR's `.iamgate.yml`
        config_path = str(dest / "iamgate-defaults.yml")
        Path(config_path).write_text("{}\n", encoding="utf-8")
        args += ["--config", config_path]
    head = git(["rev-parse", "HEAD"], root, check=False).stdout.strip() or None
    trusted_specs: list[str] = []

    def from_base(path: str) -> str | None:
        """The base's copy of `path` when a commit tracks it, else None (use the workspace's)."""
        spec = _repo_spec(root, path)
        if spec is None or not (_tracked(root, commit, spec) or (head and _tracked(root, head, spec))):
            return None
        if not any(spec == t or spec.startswith(t + "/") for t in trusted_specs):  # not written yet
            materialise(root, commit, [spec], dest)
        if not (dest / spec).exists():  # absent on the base: an empty folder, never the PR's copy
            (dest / spec).mkdir(parents=True)
        trusted_specs.append(spec)
        return str(dest / spec)

    from_base(DATA_DIR)  # all of `.iamgate/` (the default managed-policy cache among it)
    managed = from_base(base_cfg.managed_policies or DEFAULT_MANAGED)
    if managed:
        args += ["--managed-policies", managed]
    data_dir = inputs.data_dir or base_cfg.data_dir
    if data_dir:
        spec = _repo_spec(root, data_dir)
        if spec is not None and _tracked(root, head or commit, spec) and not _tracked(root, commit, spec):
            raise InputError(f"{'input' if inputs.data_dir else 'config'} data-dir: {data_dir} is not in the base "
                             f"commit {commit[:12]}; the gate's data is read from there (set `config-from: head` "
                             "to use the pull request's)")
        args += ["--data-dir", from_base(data_dir) or data_dir]
    for b in inputs.baselines or ([base_cfg.baselines] if base_cfg.baselines else []):
        args += ["--baselines", from_base(b) or b]
    fork = fork_point(root, commit)
    try:
        before = base_cfg if fork == commit else _base_config(root, fork, inputs, dest / ".fork-point")
    except InputError:  # the fork point's config did not load: measure from the base's
        before = base_cfg
    changed: list[str] = []
    if trusted_specs:
        out = git(["-c", "core.quotePath=false", "diff", "--name-only", "--no-renames", fork, "--",
                   *sorted(set(trusted_specs))], root, check=False).stdout
        changed = [line for line in out.splitlines() if line]
    return Trusted("base", commit, tuple(args), config_path, before, head_cfg, head_problem, tuple(changed))
