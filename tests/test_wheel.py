"""The built wheel works on its own: no checkout, no editable install, profiles inside.

The wheel is built from a copy of the sources (so a stale ``build/`` of the checkout cannot
leak files into it) and installed into a throwaway venv whose only other path entry is this
venv's site-packages, added as a plain ``.pth`` path line, so the editable finder of the
checkout is never loaded. Every command then runs from an empty folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from conftest import REPO

PIP_WHEEL = ("--no-deps", "--no-build-isolation", "--quiet")
ONE_EPOCH = ("--set", "trainer.max_epochs=1", "--set", "emissions.enabled=false")
SOURCES = ("eosfm_cli", "profiles", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")


def _run(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Build the wheel, install it alone in a fresh venv; return (venv, env)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "builtin_profiles")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    dist = root / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", str(src), *PIP_WHEEL, "-w", str(dist)],
        cwd=root,
        env=env,
    )
    (wheel,) = dist.glob("eosfm-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root, env=env)
    py = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    # Dependencies (and pip) come from this venv as a plain path entry; its .pth files
    # (the checkout's editable finder among them) are not processed from there.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(py), "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)], cwd=root, env=env)
    return venv, env


def test_installed_wheel_runs_without_checkout(
    wheel_env: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    venv, env = wheel_env
    eosfm = str(venv / "bin" / "eosfm")
    py = str(venv / "bin" / "python")
    where = _run([py, "-c", "import eosfm_cli; print(eosfm_cli.__file__)"], tmp_path, env)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout

    version = _run([eosfm, "--version"], tmp_path, env).stdout
    assert version.strip() == f"eosfm {metadata.version('eosfm')}"

    shown = _run([eosfm, "profile", "show"], tmp_path, env).stdout
    assert "synthetic_s2" in shown and "convnextv2_atto" in shown
    exp = _run([eosfm, "profile", "show", "-p", "datasets/eurosat_s2"], tmp_path, env).stdout
    assert "eurosat" in exp
    _run([eosfm, "profile", "validate"], tmp_path, env)

    _run([eosfm, "datasets", "generate", "synthetic", "--n", "24", "--size", "32"], tmp_path, env)
    assert (tmp_path / "data" / "synthetic").is_dir()
    _run(
        [eosfm, "train-specialist", "--dataset", "synthetic_s2", "-q", *ONE_EPOCH],
        tmp_path,
        env,
    )
    ckpts = list((tmp_path / "workspace").rglob("*.safetensors")) + list(
        (tmp_path / "workspace").rglob("*.ckpt")
    )
    assert ckpts, sorted(p.name for p in (tmp_path / "workspace").rglob("*"))


def test_wheel_file_list(wheel_env: tuple[Path, dict[str, str]]) -> None:
    venv, _ = wheel_env
    (wheel,) = (venv.parent / "dist").glob("eosfm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "eosfm_cli/builtin_profiles/default.yaml" in names
    assert "eosfm_cli/builtin_profiles/demo.yaml" in names
    shipped = {n for n in names if n.startswith("eosfm_cli/builtin_profiles/datasets/")}
    expected = {
        "eosfm_cli/builtin_profiles/datasets/" + p.name
        for p in (REPO / "profiles" / "datasets").glob("*.yaml")
    }
    assert shipped == expected
    assert "eosfm_cli/py.typed" in names
    assert not any(n.startswith(("tests/", "bench/", "profiles/")) for n in names)
