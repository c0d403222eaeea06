"""The shared checks of the loader contract (eosfm_cli/data/base.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eosfm_cli.data.base import DatasetRequest, check_class_count
from eosfm_cli.errors import DataError


def _request(classes: tuple[str, ...]) -> DatasetRequest:
    return DatasetRequest("x", Path("."), "train", ("R",), classes)


def test_class_count_mismatch_names_the_dataset_and_the_classes() -> None:
    with pytest.raises(DataError) as err:
        check_class_count(_request(("a", "b", "c")), ("sea", "ice"), "Glaciers", "dataset x",
                          kind="zone")  # fmt: skip
    line = err.value.one_line()
    assert "Glaciers has 2 zone classes, 3 were requested" in line
    assert "dataset x" in line and "sea, ice" in line


def test_matching_or_empty_classes_pass() -> None:
    check_class_count(_request(("a", "b")), ("sea", "ice"), "Glaciers", "dataset x")
    check_class_count(_request(()), ("sea", "ice"), "Glaciers", "dataset x")
