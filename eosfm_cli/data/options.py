"""Reading ``dataset.options``: typed readers and the unknown-option check.

Each reader returns the option's value, or its default when the option is absent, and raises a
:class:`~eosfm_cli.errors.DataError` naming the key (``dataset.options.<key>``) when the value
has the wrong type or range. :func:`check_options` refuses a key the loader does not read, with
a did-you-mean hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, overload

from eosfm_cli.errors import DataError


@overload
def int_option(options: Mapping[str, Any], key: str, default: int) -> int: ...


@overload
def int_option(options: Mapping[str, Any], key: str, default: None) -> int | None: ...


def int_option(options: Mapping[str, Any], key: str, default: int | None) -> int | None:
    """Read a positive integer dataset option.

    Args:
        options: the dataset options.
        key: the option name.
        default: value when the option is absent; with a ``None`` default an explicit
            ``null`` also reads as ``None`` (e.g. "as many crops as tiles").

    Returns:
        The value.

    Raises:
        DataError: when the value is not a positive integer.
    """
    value = options.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(
            f"bad value {value!r}", where=f"dataset.options.{key}", hint="use a positive integer"
        )
    return value


def fraction_option(
    options: Mapping[str, Any], key: str, default: float, *, allow_zero: bool = False
) -> float:
    """Read a dataset option that is a fraction below 1.

    Args:
        options: the dataset options.
        key: the option name.
        default: value when the option is absent.
        allow_zero: accept 0 (the range is ``[0, 1)``); otherwise the range is ``(0, 1)``.

    Returns:
        The value as a float.

    Raises:
        DataError: when the value is not a number in the range.
    """
    value = options.get(key, default)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not (0 <= value < 1 if allow_zero else 0 < value < 1):
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise DataError(
            f"bad value {value!r}",
            where=f"dataset.options.{key}",
            hint=f"use a number in {interval}",
        )
    return float(value)


def bool_option(options: Mapping[str, Any], key: str, default: bool) -> bool:
    """Read a boolean dataset option.

    Args:
        options: the dataset options.
        key: the option name.
        default: value when the option is absent.

    Returns:
        The value.

    Raises:
        DataError: when the value is not ``true`` or ``false``.
    """
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise DataError(
            f"bad value {value!r}", where=f"dataset.options.{key}", hint="use true or false"
        )
    return value


def check_options(options: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    """Refuse an unknown dataset option, suggesting the closest known one.

    Args:
        options: the dataset options.
        known: the option names the loader reads.
        where: the dataset, for the message (``"dataset caffe"``).

    Raises:
        DataError: naming the first unknown option, with a did-you-mean hint when one is close.
    """
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
            raise DataError(
                f"unknown option {key!r} for {where}",
                where=f"dataset.options.{key}",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"known options: {', '.join(known) or '(none)'}",
            )
