"""The test environment is locked like the Action's: `requirements/test.txt`, hash-locked, generated from
pyproject.toml (dependencies and the `test` extra) and `requirements/test.in`. A requirement added to either
without regenerating the lock fails here, not on a fresh clone after a release elsewhere."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
COMPILE = ("pip-compile --generate-hashes --allow-unsafe --strip-extras --extra=test --no-emit-index-url "
           "--no-emit-find-links")


def pins(lock: str) -> dict[str, str]:
    return {canonicalize_name(n): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M)}


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    lines += [ln.split("#")[0].strip() for ln in (ROOT / "requirements/test.in").read_text().splitlines()]
    return [Requirement(ln) for ln in lines if ln]


def test_every_declared_requirement_is_locked_at_a_version_it_allows():
    locked = pins((ROOT / "requirements/test.txt").read_text())
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is declared but not in requirements/test.txt: regenerate the lock"
        assert req.specifier.contains(locked[name], prereleases=True), \
            f"{req.name}=={locked[name]} in the lock does not satisfy {req}: regenerate the lock"


def test_every_pin_has_hashes_and_nothing_floats():
    lock = (ROOT / "requirements/test.txt").read_text()
    blocks = [b for b in re.split(r"\n(?=[A-Za-z0-9])", lock) if not b.startswith("#")]
    assert len(blocks) > 50
    for block in blocks:
        head = block.splitlines()[0]
        assert re.match(r"[A-Za-z0-9_.-]+==\S+ \\$", head), f"not an exact pin: {head}"
        assert "--hash=sha256:" in block, head
    assert "-e " not in lock and "file://" not in lock


def test_the_lock_names_how_it_was_made_and_the_readme_and_ci_install_from_it():
    header = (ROOT / "requirements/test.txt").read_text().split("\n\n")[0].replace("\n#    ", " ")
    for flag in COMPILE.split()[1:]:
        assert flag in header, flag
    assert "pyproject.toml requirements/test.in" in header
    command = ("pip install --require-hashes -r requirements/test.txt && "
               "pip install --no-deps --no-build-isolation -e . && python -m pytest -q")
    assert command in (ROOT / "README.md").read_text()
    assert command in (ROOT / ".ci/run").read_text()
    assert command in (ROOT / ".github/workflows/ci.yml").read_text()
    assert "--upgrade" not in (ROOT / ".ci/run").read_text()  # nothing unlocked, pip included
