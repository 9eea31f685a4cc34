"""Stage 2: usage -> one Baseline per principal ARN.

A usage source is a module here with a class registered by `@USAGE.register`. `check` reads
stored baselines (`baseline-files`); other sources (Access Analyzer, CloudTrail, Athena) write
the same format or feed `check` directly.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from ..model import Baseline, ScanError
from ..registry import Registry


@dataclass(frozen=True)
class UsageResult:
    baselines: tuple[Baseline, ...] = ()
    errors: tuple[ScanError, ...] = ()
    notes: tuple[str, ...] = field(default=())


class UsageSource(ABC):
    name: ClassVar[str]

    @abstractmethod
    def collect(self) -> UsageResult:
        """Read usage and return one baseline per principal seen."""


USAGE: Registry[UsageSource] = Registry(__name__)
