"""data/checks.py: only a bad file becomes a DataError; a bug of ours stays a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import REPO
from reliability_helpers import SYNTHETIC, tiny_sets

from eosfm_cli.data.checks import check_split
from eosfm_cli.errors import DataError


class _Raising(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """A loader test double whose reads raise ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> Any:
        raise self.error

    def source(self, index: int) -> str:
        return f"scene_{index}.tif"


def _check(ds: Any) -> None:
    check_split(ds, "train", "/data", ["B02", "B03"], "classification", 2)


def test_a_bug_in_a_loader_is_not_a_data_error() -> None:
    for bug in (TypeError("unsupported operand"), KeyError("label"), AttributeError("x")):
        with pytest.raises(type(bug)):
            _check(_Raising(bug))


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError(2, "No such file or directory"),
        ValueError("cannot reshape array of size 7"),
        EOFError("truncated"),
    ],
)
def test_a_bad_file_is_a_data_error_with_its_cause(error: BaseException) -> None:
    with pytest.raises(DataError, match="cannot read the sample") as info:
        _check(_Raising(error))
    assert info.value.__cause__ is error  # --verbose shows the reader's own traceback
    assert "scene_0.tif" in info.value.one_line()


def test_a_corrupt_geotiff_is_a_data_error(tmp_path: Path) -> None:
    import rasterio

    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 64)

    class _Reader(_Raising):
        def __getitem__(self, index: int) -> Any:
            with rasterio.open(bad) as src:
                return {"image": torch.from_numpy(src.read())}

    with pytest.raises(DataError, match="cannot read the sample"):
        _check(_Reader(TypeError()))


_PATCHED_RUN = """
import sys
from eosfm_cli.data import synthetic_loader

def broken(self, index):
    raise {error}

synthetic_loader.SyntheticScenes.sample = broken
from eosfm_cli.cli import main
sys.argv = ["eosfm", *sys.argv[1:]]
main()
"""


def _run_patched(error: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["train-specialist", "-w", str(tmp_path / "ws"), "--root", str(SYNTHETIC)]
    for s in tiny_sets():
        args += ["--set", s]
    return subprocess.run(
        [sys.executable, "-c", _PATCHED_RUN.format(error=error), *args, *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cli_reports_a_loader_bug_as_a_crash_with_its_traceback(tmp_path: Path) -> None:
    proc = _run_patched("TypeError('a bug in the loader')", tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode not in (0, 2), out
    assert "Traceback" in out and "TypeError" in out and "a bug in the loader" in out, out
    assert "cannot read the sample" not in out


def test_cli_reports_a_bad_file_in_one_line_and_its_cause_with_verbose(tmp_path: Path) -> None:
    error = "OSError(5, 'Input/output error')"
    quiet = _run_patched(error, tmp_path)
    assert quiet.returncode == 2, quiet.stderr
    lines = [ln for ln in quiet.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot read the sample" in lines[0], quiet.stderr
    loud = _run_patched(error, tmp_path, "--verbose")
    assert loud.returncode == 2
    assert "Input/output error" in loud.stderr and "OSError" in loud.stderr
    assert "direct cause" in loud.stderr, loud.stderr  # the reader's traceback is kept
