"""Stage 2: usage -> one Baseline per principal ARN.

A usage source is a module here with a class registered by `@USAGE.register`. `check` reads
stored baselines (`baseline_files`); the others (Access Analyzer policy generation and unused
access, IAM last accessed, CloudTrail, Athena) write the same format (`baseline_format`) or feed
`check` directly. Beside them: `matching` (principals to baselines), `principal_arns` (deployed
ARNs), `baseline_job` (the scheduled job's run), and the AWS plumbing (`aws_clients`, `aws_errors`,
`run_lock`).
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
