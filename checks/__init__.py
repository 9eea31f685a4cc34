"""Stage 4: verdicts -> findings. One check per module, each registered with `@CHECKS.register`.

Installed as `iamgate.checks` (see pyproject.toml); never as a top-level `checks` package.
"""
from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Iterable

from iamgate.config import Config
from iamgate.model import Finding, PrincipalResult, Unresolved
from iamgate.reference.catalog import Catalog
from iamgate.registry import Registry


@dataclass(frozen=True)
class Analysis:
    results: tuple[PrincipalResult, ...]
    unresolved: tuple[Unresolved, ...]
    catalog: Catalog
    config: Config = field(default_factory=Config)
    today: dt.date = field(default_factory=dt.date.today)
    memo: dict = field(default_factory=dict, compare=False, hash=False, repr=False)  # work checks share


class Check(ABC):
    name: ClassVar[str]  # the check id
    title: ClassVar[str]
    severity: ClassVar[str]  # default severity
    docs: ClassVar[str]

    @abstractmethod
    def run(self, analysis: Analysis) -> Iterable[Finding]:
        """Yield findings."""


CHECKS: Registry[Check] = Registry(__name__)
