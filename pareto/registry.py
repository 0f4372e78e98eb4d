"""A small name -> class registry, shared by merge families, reward heads and search drivers."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Classes registered by name with ``@registry.register("name")``.

    The decorator sets ``attribute`` (``name`` or ``kind``) on the class; looking up an unknown
    name raises ``ValueError`` listing the known ones.
    """

    def __init__(self, what: str, attribute: str = "name"):
        self.what, self.attribute = what, attribute
        self._items: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def wrap(cls: type[T]) -> type[T]:
            if name in self._items:
                raise ValueError(f"{self.what} {name!r} is already registered")
            setattr(cls, self.attribute, name)
            self._items[name] = cls
            return cls

        return wrap

    def get(self, name: str) -> type[T]:
        try:
            return self._items[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.what} {name!r}; known: {', '.join(sorted(self._items))}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)


def import_modules(package: str, path) -> None:
    """Import every module of ``package`` (its ``__path__``), so that the classes they
    register are registered: adding a family or a driver is adding one file."""
    for module in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{module.name}")
