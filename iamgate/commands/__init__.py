"""CLI subcommands: one module each, registered with `@COMMANDS.register`."""
from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import ClassVar

from ..errors import UsageError  # noqa: F401 - commands raise it from here
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
