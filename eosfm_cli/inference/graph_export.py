"""Exported graphs: a deployable module written as ONNX or ``.pt2``, with its metadata.

Both formats are traced once by :func:`torch.export.export` (batch always dynamic; height and
width dynamic in multiples of the module's :attr:`multiple` where the graph allows), then
written either by :func:`torch.export.save` (``.pt2``, metadata in the extra file
``eosfm.json``) or by the dynamo ONNX exporter (``torch.onnx.export`` of the exported program,
which needs ``onnxscript``; metadata in ``metadata_props``: the whole record as JSON under
``eosfm``, and ``input_bands``, ``classes`` and ``tile`` as plain strings for other tools).

**Where spatial size stays fixed.** ONNX has no adaptive pooling: the exporter turns
UPerNet's pyramid pooling (output sizes 2, 3, 6) into fixed kernels for the traced size, which
silently gives wrong values at any other size. A graph holding such a pool is therefore
exported to ONNX with the traced tile size fixed (the batch stays dynamic), and the metadata
says so (``dynamic_spatial: false``). ``.pt2`` keeps adaptive pooling, so it stays dynamic.

Files are written under a temporary name and renamed once whole.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from eosfm_cli.errors import ArtifactError, ProfileError
from eosfm_cli.io import atomic_path

GraphFormat = Literal["onnx", "pt2"]
#: Metadata key (ONNX ``metadata_props``) and extra-file stem (``.pt2``).
METADATA_KEY = "eosfm"
#: ONNX files past this size keep their weights in a ``.data`` file beside them (protobuf's
#: 2 GiB limit, with room for the graph).
SINGLE_FILE_LIMIT = 1_800_000_000
#: The pip extra that brings the ONNX exporter and runtime.
ONNX_EXTRA = "onnx"


def needs_fixed_spatial(module: Any, fmt: GraphFormat) -> bool:
    """Whether ``fmt`` cannot keep this module's height and width dynamic.

    True for ONNX when the module pools adaptively to an output larger than 1x1 (see the
    module docstring); a global pool (output 1) exports as a plain mean.
    """
    from torch import nn

    if fmt != "onnx":
        return False
    for layer in module.modules():
        if isinstance(layer, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            size = layer.output_size
            sizes = size if isinstance(size, tuple) else (size, size)
            if any(s not in (1, None) for s in sizes):
                return True
    return False


def trace(module: Any, example: Any, multiple: int, fixed_spatial: bool) -> Any:
    """Trace ``module`` on ``example`` with :func:`torch.export.export`.

    Args:
        module: the deployable module, in eval mode.
        example: an input batch ``[B, C, H, W]`` (H and W multiples of ``multiple``).
        multiple: the spatial size the graph needs H and W to divide by.
        fixed_spatial: keep H and W at the example's size (only the batch is dynamic).

    Returns:
        The :class:`torch.export.ExportedProgram`.
    """
    import torch
    from torch.export import Dim

    dims: dict[int, Any] = {0: Dim("batch", min=1, max=4096)}
    if not fixed_spatial:
        dims[2] = multiple * Dim("h", min=1, max=4096 // multiple)
        dims[3] = multiple * Dim("w", min=1, max=4096 // multiple)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.export(module, (example,), dynamic_shapes={"x": dims}, strict=False)


def write_graph(
    module: Any,
    fmt: GraphFormat,
    path: Path,
    example: Any,
    metadata: dict[str, Any],
    output_names: Sequence[str],
) -> dict[str, Any]:
    """Export ``module`` to ``path`` (written whole or not at all) with its metadata.

    Args:
        module: the deployable module (it has ``multiple``, or an ``encoder`` that has it).
        fmt: ``onnx`` or ``pt2``.
        path: the output file.
        example: an input batch ``[B, C, H, W]`` to trace with.
        metadata: what the file records (bands, classes, sources' sha256...); the shapes this
            function decides are added to it.
        output_names: the graph's output names, in order.

    Returns:
        The metadata as written.

    Raises:
        ArtifactError: when the ONNX exporter's dependencies are missing, or the graph does
            not export.
    """
    encoder = getattr(module, "encoder", module)
    fixed = needs_fixed_spatial(module, fmt)
    height, width = int(example.shape[-2]), int(example.shape[-1])
    meta = {
        **metadata,
        "format": fmt,
        "input_name": "x",
        "output_names": list(output_names),
        "input_shape": ["batch", len(encoder.input_bands)]
        + ([height, width] if fixed else [f"{encoder.multiple}*h", f"{encoder.multiple}*w"]),
        "dynamic_spatial": not fixed,
        "multiple": encoder.multiple,
    }
    if fmt == "onnx":
        _require_onnx_exporter()
    try:
        program = trace(module, example, encoder.multiple, fixed)
    except Exception as err:  # torch raises many kinds; the first line says which op failed
        raise ArtifactError(
            f"the graph does not export ({type(err).__name__}: {_first_line(err)})",
            where=str(path),
        ) from None
    with atomic_path(path) as tmp:
        if fmt == "pt2":
            import torch

            torch.export.save(program, tmp, extra_files={f"{METADATA_KEY}.json": _dump(meta)})
        else:
            _save_onnx(program, tmp, meta, output_names)
    return meta


def _save_onnx(program: Any, tmp: Path, meta: dict[str, Any], output_names: Sequence[str]) -> None:
    import torch

    size = sum(int(v.numel()) * v.element_size() for v in program.state_dict.values())
    # The exporter reports its progress on stdout; a stage keeps its own output.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_program = torch.onnx.export(
            program, input_names=["x"], output_names=list(output_names), dynamo=True
        )
    assert onnx_program is not None
    props = onnx_program.model.metadata_props
    props[METADATA_KEY] = _dump(meta)
    props["input_bands"] = ",".join(meta.get("input_bands", []))
    props["classes"] = ",".join(meta.get("classes", []))
    props["tile"] = str(meta.get("tile", ""))
    onnx_program.save(tmp, external_data=size > SINGLE_FILE_LIMIT)


def read_graph_metadata(path: Path) -> dict[str, Any]:
    """The ``eosfm`` metadata of an exported ``.onnx`` or ``.pt2`` file, without loading it.

    Raises:
        ArtifactError: when the file is missing, unreadable or was not written by eosfm.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError("exported model not found", where=str(path))
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next(
                    (n for n in archive.namelist() if n.endswith(f"extra/{METADATA_KEY}.json")),
                    None,
                )
                text = archive.read(name).decode() if name else None
        else:
            text = _onnx_metadata(path).get(METADATA_KEY)
        meta = json.loads(text) if text else None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ArtifactError(f"cannot read its metadata ({err})", where=str(path)) from None
    if not isinstance(meta, dict):
        raise ArtifactError(
            "not an eosfm export (no eosfm metadata)",
            where=str(path),
            hint="export it with `eosfm export-model`",
        )
    return meta


def _onnx_metadata(path: Path) -> dict[str, str]:
    try:
        import onnx
    except ImportError:
        raise missing_extra("reading an ONNX file's metadata", "onnx", ONNX_EXTRA) from None
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def missing_extra(what: str, module: str, extra: str) -> ArtifactError:
    """The one-line error for an optional dependency that is not installed."""
    return ArtifactError(
        f"{what} needs `{module}`, which is not installed",
        where="python environment",
        hint=f"pip install 'eosfm[{extra}]'",
    )


def _require_onnx_exporter() -> None:
    for module in ("onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            raise missing_extra("exporting to ONNX", module, ONNX_EXTRA) from None


def check_format(fmt: str) -> GraphFormat:
    """``fmt`` as a :data:`GraphFormat`, or a one-line error."""
    if fmt not in ("onnx", "pt2"):
        raise ProfileError(f"unknown export format {fmt!r}", where="--format", hint="onnx or pt2")
    return fmt  # type: ignore[return-value]


def _dump(meta: dict[str, Any]) -> str:
    return json.dumps(meta, sort_keys=True)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().split("\n") or [""])[0][:300]
