"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EUROSAT100 = SHARED / "data" / "eurosat100"
TEST_DATA = Path(__file__).resolve().parent / "data"

os.environ.setdefault("PYTHONHASHSEED", "0")


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def eurosat100() -> Path:
    if not EUROSAT100.is_dir():
        pytest.skip(f"real EuroSAT100 data not found at {EUROSAT100} (../shared is absent)")
    return EUROSAT100


@pytest.fixture(scope="session")
def prepared_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny workspace (2 specialists, 1 ensemble, 1 head); never modify it."""
    from reliability_helpers import build_workspace

    return build_workspace(tmp_path_factory.mktemp("prepared") / "ws")
