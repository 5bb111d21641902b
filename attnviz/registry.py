"""A tiny name → object registry shared by analyses, renderers and tasks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from attnviz.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects found by a lower_snake name; unknown names list the valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        return list(self._items)
