"""Declared keyword settings of registered classes (families, drivers), and the one error for
a setting a class does not have."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping


def declared_settings(init: Callable, skip: Iterable[str] = ()) -> tuple[str, ...]:
    """The keyword settings ``init`` (a class's ``__init__``) declares, in order, leaving out
    ``self`` and the positional inputs named in ``skip``."""
    left_out = {"self", *skip}
    return tuple(p for p in inspect.signature(init).parameters if p not in left_out)


def reject_unknown_settings(
    owner: str, given: Mapping | Iterable[str], allowed: Iterable[str]
) -> None:
    """``ValueError`` naming the settings in ``given`` that ``owner`` (``"driver 'nsga2'"``)
    does not have, and the ones it has."""
    allowed = tuple(allowed)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(
            f"{owner} has no setting(s) {unknown}; its settings are: {', '.join(allowed) or 'none'}"
        )
