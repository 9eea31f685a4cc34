"""Stored baselines: iamgate.baseline/v1 files and raw Access Analyzer output, from files or folders."""
from __future__ import annotations

from pathlib import Path

from ..model import ScanError
from . import USAGE, UsageResult, UsageSource
from . import baseline_format as fmt


@USAGE.register
class BaselineFiles(UsageSource):
    name = "baseline-files"

    def __init__(self, paths: list[str]):
        self.paths = paths

    def files(self) -> list[Path]:
        out: list[Path] = []
        for p in self.paths:
            path = Path(p)
            if path.is_dir():
                out.extend(sorted(f for f in path.rglob("*.json") if not any(
                    part.startswith(".") for part in f.relative_to(path).parts)))
            else:
                out.append(path)
        return out

    def collect(self) -> UsageResult:
        baselines, errors = [], []
        for path in self.files():
            if not path.exists():
                errors.append(ScanError(path.as_posix(), None, "baseline path does not exist"))
                continue
            try:
                baselines.append(fmt.load(path))
            except fmt.BaselineError as e:
                errors.append(ScanError(path.as_posix(), None, f"baseline: {e}"))
        return UsageResult(tuple(baselines), tuple(errors))
