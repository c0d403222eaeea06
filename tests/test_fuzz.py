"""Fuzzing the two readers of untrusted input: profiles and ensemble files.

Whatever the bytes or the structure, the readers may only succeed or raise an
:class:`~eosfm_cli.errors.EosfmError`; any other exception would reach the user as a traceback.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eosfm_cli.errors import EosfmError
from eosfm_cli.models.ensemble_file import detect_format, load_any
from eosfm_cli.models.native_file import read_metadata, save_ensemble
from eosfm_cli.models.reference_file import load_reference
from eosfm_cli.models.spec import SpecialistSpec
from eosfm_cli.profile_schema import Profile
from eosfm_cli.profiles import apply_overrides, load_profile, validate

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KEYS = [*Profile.model_fields, "include", "trainer", "max_epochs", "name", "bands", "x"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["S2_ALL", "B04", "../x", "convnextv2_atto", "ddp", "32-true"]),
)
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=4),
    ),
    max_leaves=20,
)


def _only_our_errors(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except EosfmError as err:
        assert err.one_line()
        assert "\n" not in err.one_line()


# ---------------------------------------------------------------------------------- profiles


@FUZZ
@given(data=st.binary(max_size=400))
def test_profile_loader_random_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.yaml"
        path.write_bytes(data)
        _only_our_errors(load_profile, path)


@FUZZ
@given(
    pieces=st.lists(
        st.sampled_from(
            [
                *"abc:-[]{}!&*#|>'\"\n 0123.,?%@`\\",
                *("include: p.yaml\n", "trainer:\n  ", "seed: ", "2024-13-01", "!!python/"),
            ]
        ),
        max_size=40,
    )
)
def test_profile_loader_yaml_like_text(pieces: list[str]) -> None:
    text = "".join(pieces)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.yaml"
        path.write_text(text)
        _only_our_errors(load_profile, path)


@FUZZ
@given(data=st.dictionaries(st.sampled_from(KEYS), structures, max_size=5))
def test_profile_validation_random_structures(data: dict[str, Any]) -> None:
    data.pop("include", None)
    _only_our_errors(validate, data, "fuzz.yaml")


@FUZZ
@given(
    data=st.dictionaries(st.sampled_from(KEYS), structures, max_size=3),
    sets=st.lists(st.text(max_size=30), max_size=3),
)
def test_profile_overrides_random_expressions(data: dict[str, Any], sets: list[str]) -> None:
    def apply_then_validate() -> None:
        merged = apply_overrides(data, sets)
        merged.pop("include", None)
        validate(merged, "fuzz.yaml + --set")

    _only_our_errors(apply_then_validate)


# ---------------------------------------------------------------------------- ensemble files


def _tiny_ensemble() -> bytes:
    spec = SpecialistSpec(
        name="tiny",
        backbone="convnextv2_atto",
        bands=["B04", "B03", "B02"],
        mean=[0.0] * 3,
        std=[1.0] * 3,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.safetensors"
        save_ensemble(path, [spec], [{"stem_0.weight": torch.ones(4, 3, 2, 2)}])
        return path.read_bytes()


TINY_ENSEMBLE = _tiny_ensemble()


def _read_all(path: Path) -> None:
    _only_our_errors(detect_format, path)
    _only_our_errors(load_any, path)
    _only_our_errors(read_metadata, path)


@FUZZ
@given(data=st.binary(max_size=300))
def test_ensemble_reader_random_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.safetensors"
        path.write_bytes(data)
        _read_all(path)


@FUZZ
@given(
    cut=st.integers(min_value=0, max_value=len(TINY_ENSEMBLE)),
    flips=st.lists(
        st.tuples(st.integers(0, len(TINY_ENSEMBLE) - 1), st.integers(0, 255)), max_size=4
    ),
)
def test_ensemble_reader_mutated_native_file(cut: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(TINY_ENSEMBLE)
    for pos, value in flips:
        data[pos] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.safetensors"
        path.write_bytes(bytes(data[: max(cut, 1)] if flips else data[:cut]))
        _read_all(path)


@FUZZ
@given(header=structures, metadata=st.dictionaries(st.text(max_size=12), structures, max_size=3))
def test_ensemble_reader_random_safetensors_header(header: Any, metadata: dict[str, Any]) -> None:
    if isinstance(header, dict):
        header = {**header, "__metadata__": metadata}
    blob = json.dumps(header).encode()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.safetensors"
        path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * 64)
        _read_all(path)


tensors = st.builds(
    lambda shape: torch.zeros(tuple(shape)),
    st.lists(st.integers(0, 3), min_size=0, max_size=4),
)
reference_items = st.recursive(
    st.one_of(scalars, tensors),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner, inner),
        st.dictionaries(
            st.one_of(st.sampled_from(["backbone", "encoder_name", "bands"]), st.text(max_size=5)),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=12,
)


@FUZZ
@given(obj=reference_items)
def test_reference_reader_random_structures(obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.pth"
        path.write_bytes(buf.getvalue())
        _only_our_errors(load_reference, path)
        _only_our_errors(load_any, path)


@pytest.mark.parametrize(
    "obj",
    [
        [(3, {"stem_0.weight": torch.zeros(1)}, {"backbone": 7})],
        [(3, {"stem_0.weight": torch.zeros(1)}, {"backbone": "timm_x", "bands": 5})],
        [(True, {"w": torch.zeros(1)}, {"backbone": "timm_x"})],
        [(2**80, {"w": torch.zeros(1)}, {"backbone": "timm_x"})],
    ],
)
def test_reference_reader_odd_entries(tmp_path: Path, obj: Any) -> None:
    torch.save(obj, tmp_path / "r.pth")
    _only_our_errors(load_any, tmp_path / "r.pth")
