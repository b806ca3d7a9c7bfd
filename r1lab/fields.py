"""Checks of a config's declared field types, with no dependency beyond the standard library:
the world's generators and the scoring rules use them without importing torch (`r1lab.runtime`
re-exports them for the stage configs)."""

from __future__ import annotations

import dataclasses
import numbers


def is_int(value: object) -> bool:
    """An int that is not a bool: a count or a seed read from a config file (2.5 is not one, and
    Python counts True as the int 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int_fields(config: object) -> None:
    """Every field of a config dataclass declared `int` (or `int | None`, when set) holds an int, refused
    by name: a float from Python or a config file (epochs = 2.5) ran as 3 or failed as a TypeError
    deep in a run, and a bool (True) ran as 1. A field declared `bool` holds a bool: a str ("false" from
    an environment variable) was true, so bf16="false" trained in bf16. Called first in each stage
    config's `__post_init__`."""
    for field in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, field.name)
        if field.type in ("bool", bool) and not isinstance(value, bool):
            raise ValueError(f"{type(config).__name__}.{field.name} must be True or False, got {value!r}")
        if field.type in ("int", int) or (field.type == "int | None" and value is not None):
            if not is_int(value):
                raise ValueError(f"{type(config).__name__}.{field.name} must be an integer, got {value!r}")


def check_int_arg(function: str, name: str, value: object) -> None:
    """TypeError naming ``function`` and its argument ``name`` unless ``value`` is an int (a numpy int
    too), not a bool: the world's generators seed their stream by the seed's text, so 0.0 ("0.0") and
    True ("True") drew another stream than 0 and 1, in silence, and a count of True drew one item."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{function}: {name} must be an int, got {value!r}")
