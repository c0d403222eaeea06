"""eosfm: EoS-FM ensembles of specialist Earth-observation encoders."""

from importlib import metadata as _metadata

try:
    # One version string: the package metadata (pyproject.toml's `version`).
    __version__ = _metadata.version("eosfm")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
