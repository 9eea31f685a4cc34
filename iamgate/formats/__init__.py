"""Stage 5: a Report -> text, json, markdown, sarif, github. One module per format."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from ..registry import Registry


class Format(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""

    def __init__(self, color: bool = False):
        self.color = color

    @abstractmethod
    def render(self, report) -> str:
        """The report as text in this format."""


FORMATS: Registry[Format] = Registry(__name__)
