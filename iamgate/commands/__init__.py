"""CLI subcommands: one module each, registered with `@COMMANDS.register`. Like the GitHub Action,
they run the stages; no stage imports them."""
from __future__ import annotations

import argparse
import sys
from abc import ABC, abstractmethod
from typing import ClassVar

from ..errors import UsageError  # noqa: F401 - commands raise it from here
from ..escape import terminal
from ..registry import Registry


class Command(ABC):
    name: ClassVar[str]
    help: ClassVar[str]
    long_running: ClassVar[bool] = False  # runs for hours (polling AWS): keeps the cycle collector on

    @abstractmethod
    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add this command's arguments."""

    @abstractmethod
    def run(self, args: argparse.Namespace) -> int:
        """Run and return the exit code."""


COMMANDS: Registry[Command] = Registry(__name__)


def print_errors(errors) -> None:
    """Located errors (`ScanError`s) on stderr, one line each; file names and messages quote the
    scanned code or logs, so control characters are made visible."""
    for e in errors:
        print(terminal(f"iamgate: {e.file}{':' + str(e.line) if e.line else ''}: {e.message}"), file=sys.stderr)
