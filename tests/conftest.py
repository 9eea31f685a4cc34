"""Shared test helpers. The read-only corpus lives beside the checkout in ../shared."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IAMGATE_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "corpus"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# tfparse (test_terraform_tfparse.py) is a Go library. Go's runtime reads these when a process starts, so they are
# set here, before xdist starts its workers: by default its garbage collector runs often and on every core, a
# third of that test's CPU time (38 s -> 27 s with these), in a process that parses and exits.
os.environ.setdefault("GOGC", "400")
os.environ.setdefault("GOMAXPROCS", "1")


@pytest.fixture(autouse=True, scope="session")
def _grant_history_only_where_asked():
    """`check` and `fix` read grant history from git by themselves, and this repository's fixtures were
    committed after their baselines' windows: every grant would be too recent to judge. So tests judge
    without it ($IAMGATE_NO_HISTORY) unless they ask with the `history_on` fixture, in repositories they build.
    Session-wide, so module-scoped fixtures that run the CLI see it too."""
    before = os.environ.get("IAMGATE_NO_HISTORY")
    os.environ["IAMGATE_NO_HISTORY"] = "1"
    yield
    if before is None:
        os.environ.pop("IAMGATE_NO_HISTORY", None)
    else:
        os.environ["IAMGATE_NO_HISTORY"] = before


# Work that costs seconds and is shared by many tests is done once per xdist worker (a session fixture,
# a module's cache). Tests sharing it run on one worker, so it is done once in all: nodeid prefix -> group.
SHARED_WORK = {
    "tests/test_corpus_terraform.py::": "terraform-corpus",  # the `terraform_corpus` fixture
    "tests/test_terraform_tfparse.py::": "terraform-corpus",
    "tests/test_terraform_links.py::test_every_": "terraform-corpus",
    "tests/test_cfn_reference.py::": "cloudformation-corpus",  # `corpus_scan`, and the reference's runs
    "tests/test_corpus_cloudformation.py::test_every_": "cloudformation-corpus",
    "tests/test_corpus_sam_cdk_serverless.py::": "cloudformation-corpus",
}
SHARED_FIXTURES = {"terraform_corpus": "terraform-corpus", "corpus_scan": "cloudformation-corpus"}
RISK_FORMAT = "tests/test_risk_escalation.py::test_combination_fires_only_when_complete["  # one analysis per format
# modules whose module-scoped fixture costs a second or more (a moto server, a CLI run): each is one group
MODULE_FIXTURES = ("test_baseline_command", "test_baseline_http", "test_cli", "test_cloudtrail_s3",
                   "test_managed_policies", "test_report_v2", "test_resolve", "test_sam", "test_unused_access_http")


def shared_work_group(nodeid: str) -> str | None:
    if nodeid.startswith(RISK_FORMAT):
        return "risk-" + nodeid[len(RISK_FORMAT):].rsplit("-", 1)[0]  # the id is `{format}-{combination}`
    module = nodeid.split("::", 1)[0]
    if module.removeprefix("tests/").removesuffix(".py") in MODULE_FIXTURES:
        return module
    return next((group for prefix, group in SHARED_WORK.items() if nodeid.startswith(prefix)), None)


def pytest_collection_modifyitems(items):
    """A test that uses a shared fixture is in its group (else that fixture is computed on both workers)."""
    for item in items:
        for name in SHARED_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            if shared_work_group(item.nodeid) != SHARED_FIXTURES[name]:
                raise pytest.UsageError(f"{item.nodeid} uses `{name}`: add it to SHARED_WORK in tests/conftest.py")


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` (pyproject.toml) with the groups above: each group is one unit of work, given to one
    worker, biggest first; every other test is a unit of its own. (xdist's `xdist_group` marks do not work
    with pytest 9.2: pytest-xdist#1386.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SharedWorkScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return shared_work_group(nodeid) or super()._split_scope(nodeid)
    return SharedWorkScheduling(config, log)


@pytest.fixture
def history_on(monkeypatch):
    monkeypatch.delenv("IAMGATE_NO_HISTORY", raising=False)


def corpus_path(*parts: str) -> Path:
    """A path in ../shared/corpus; the test is skipped when the corpus is absent."""
    p = CORPUS.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared corpus not available: {p}")
    return p


def run_cli(*args: str, cwd: Path | str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `iamgate` CLI in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "iamgate", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)


def cli_in_process(*args: str, cwd: Path | str) -> SimpleNamespace:
    """`iamgate ARGS` in this process, from `cwd`: the CLI's own code path without a subprocess's
    start-up. Returns returncode, stdout and stderr like `run_cli`."""
    from iamgate import cli
    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        os.chdir(before)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def role_template(*statements: str) -> str:
    """A CloudFormation template with one role, `app`, whose inline policy has these statements
    (YAML flow mappings such as `{Effect: Allow, Action: "s3:GetObject", Resource: "*"}`)."""
    return ("Resources:\n  AppRole:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: app\n"
            "      Policies:\n        - PolicyName: p\n          PolicyDocument:\n            Statement:\n"
            + "".join(f"              - {s}\n" for s in statements))


def in_a_terminal(args: list[str], env: dict, cwd) -> tuple[int, str]:
    """Run the CLI with its stdout on a pseudo-terminal: (exit code, what it wrote there)."""
    import pty
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "iamgate", *args], cwd=cwd, stdout=follower,
                            stderr=subprocess.PIPE, env={**os.environ, **env})
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(leader)
    return proc.returncode, b"".join(chunks).decode()


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


@pytest.fixture(scope="session")
def catalog():
    from iamgate.reference.catalog import load_catalog
    return load_catalog()


@pytest.fixture(scope="session")
def corpus_scan():
    """`corpus_scan("cdk")`: one scan of a folder of ../shared/corpus (relative to that folder), shared by
    the tests that read it; skips when the corpus is absent. `.translated(template)`: the SAM transform's
    output the scan got for that template (with no parameters), so that a test need not run it again; None
    where the scan did not run it."""
    import time

    from iamgate.sources import Workspace, scan
    from iamgate.sources.cloudformation import sam_transform
    scans: dict = {}
    translate = sam_transform.translate

    def get(kind: str) -> SimpleNamespace:
        if kind not in scans:
            root = corpus_path(kind)
            ws = Workspace([str(root)], base=str(root))
            translated: dict = {}  # id(template) -> (template, output): holding the template keeps its id unique

            def recorded(doc, parameters):
                out = translate(doc, parameters)
                if not parameters:
                    translated[id(doc)] = (doc, out)
                return out
            start = time.perf_counter()
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(sam_transform, "translate", recorded)
                result = scan(ws)
            scans[kind] = SimpleNamespace(root=root, ws=ws, result=result, seconds=time.perf_counter() - start,
                                          translated=partial(_translated, translated))
        return scans[kind]
    return get


def _translated(held: dict, doc):
    template, out = held.get(id(doc), (None, None))
    return out if template is doc else None


@pytest.fixture(scope="session")
def terraform_corpus():
    """One scan of ../shared/corpus/terraform shared by the Terraform corpus tests, with what the Terraform
    source saw on the way: each root module's result and each IamBuilder (their links and notes)."""
    from types import SimpleNamespace

    from iamgate.sources import Workspace, scan
    from iamgate.sources.terraform import configuration as tf
    root = corpus_path("terraform")
    builders, roots = [], []

    class Builder(tf.IamBuilder):
        def run(self):
            builders.append(self)
            super().run()

    collect_root = tf.TerraformSource.collect_root

    def recording_collect_root(self, workspace, module_root, seen):
        result = collect_root(self, workspace, module_root, seen)
        roots.append((module_root, result))
        return result

    mp = pytest.MonkeyPatch()
    mp.setattr(tf, "IamBuilder", Builder)
    mp.setattr(tf.TerraformSource, "collect_root", recording_collect_root)
    try:
        ws = Workspace([str(root)], base=str(root))
        result = scan(ws, only=["terraform", "terraform-plan"])
    finally:
        mp.undo()
    return SimpleNamespace(root=root, ws=ws, result=result, builders=builders, roots=roots)


@pytest.fixture
def clients(monkeypatch):
    """AWS clients for Stubber tests: the endpoint is a closed local port, so a call the stub does not
    expect fails fast. (A test module with a real local server defines its own.)"""
    from fixtures.aws.helpers import aws_env
    from iamgate.usage.aws_clients import Clients
    aws_env(monkeypatch)
    return Clients("us-east-1")


@pytest.fixture
def clock():
    from fixtures.aws.helpers import FakeClock
    return FakeClock()
