"""Plug-in registries: a module in a stage's package (or in a folder of it) registers itself on import."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, package: str):
        self.package = package
        self._items: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, cls: type[T]) -> type[T]:
        self._items[cls.name] = cls  # type: ignore[attr-defined]
        return cls

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        self._import_all(self.package)

    def _import_all(self, package: str) -> None:
        """Every public module of the package and of its public subpackages (a folder of kinds)."""
        pkg = importlib.import_module(package)
        for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{package}.{mod.name}")
                if mod.ispkg:
                    self._import_all(f"{package}.{mod.name}")

    def loaded_with(self, module: str) -> dict[str, type[T]]:
        """What is registered after importing just `module` of the package (if it exists): a CLI
        run of one command need not import every other command's dependencies (boto3)."""
        if not self._loaded:
            pkg = importlib.import_module(self.package)
            if module.isidentifier() and any(m.name == module for m in pkgutil.iter_modules(pkg.__path__)):
                importlib.import_module(f"{self.package}.{module}")
        return dict(self._items)

    def all(self) -> dict[str, type[T]]:
        self._load()
        return dict(self._items)

    def get(self, name: str) -> type[T]:
        return self.all()[name]

    def names(self) -> list[str]:
        return sorted(self.all())
