"""Build hook: ship the top-level ``profiles/`` folder inside the package.

``profiles/`` at the top of the checkout is the one source of the built-in profiles (the
design card puts it there). A wheel copies it to ``eosfm_cli/builtin_profiles/`` so that an
installed ``eosfm`` finds ``default.yaml`` and the experiment profiles without a checkout.
All other metadata lives in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCE = Path(__file__).resolve().parent / "profiles"
TARGET = Path("eosfm_cli") / "builtin_profiles"


class BuildPyWithProfiles(build_py):
    """``build_py`` that also copies the YAML profiles into the built package."""

    def run(self) -> None:
        """Build the package, then copy every ``profiles/**/*.yaml`` beside it."""
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's profiles/ directly
        target = Path(self.build_lib) / TARGET
        if target.exists():
            shutil.rmtree(target)
        for src in sorted(SOURCE.rglob("*.yaml")):
            dst = target / src.relative_to(SOURCE)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)


setup(cmdclass={"build_py": BuildPyWithProfiles})
