"""Post-training static int8 quantization of an exported ONNX graph (onnxruntime's quantizer).

Weights become int8 per output channel, activations uint8 per tensor, with scales calibrated
on the batches given (a seeded sample of real inputs: what the graph will see, since the raw
values' range is what calibration measures). The graph is written in QDQ form, which
onnxruntime and openvino both run. Accuracy loss is for the caller to measure against the fp32
graph on held-out batches (:func:`relative_error`); ``bench/bench_runtime.py`` reports it for
the 6-specialist ensemble.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eosfm_cli.inference.graph_export import ONNX_EXTRA, missing_extra
from eosfm_cli.io import atomic_path


def quantize_int8(source: Path, output: Path, calibration: Iterable[np.ndarray[Any, Any]]) -> Path:
    """Write an int8 (QDQ) copy of the ONNX graph ``source``, calibrated on ``calibration``.

    The ``eosfm`` metadata is kept and marked ``"precision": "int8"``.

    Args:
        source: an fp32 ONNX export (``eosfm export-model``).
        output: the int8 file, written whole or not at all.
        calibration: input batches ``[B, C, H, W]`` float32 (min-max calibration).

    Returns:
        ``output``.

    Raises:
        ArtifactError: when onnxruntime's quantizer (the ``onnx`` extra) is missing.
    """
    try:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise missing_extra("int8 quantization", "onnxruntime", ONNX_EXTRA) from None

    batches = [np.ascontiguousarray(b, dtype=np.float32) for b in calibration]

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._next = iter(batches)

        def get_next(self) -> dict[str, np.ndarray[Any, Any]] | None:
            batch = next(self._next, None)
            return None if batch is None else {"x": batch}

    with tempfile.TemporaryDirectory() as scratch, atomic_path(output) as tmp:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(tmp),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
        )
        model = onnx.load(str(tmp))
        props = {p.key: p for p in model.metadata_props}
        source_props = {p.key: p.value for p in onnx.load(str(source)).metadata_props}
        for key, value in source_props.items():
            if key == "eosfm":
                meta = json.loads(value)
                meta["precision"] = "int8"
                value = json.dumps(meta, sort_keys=True)
            if key in props:
                props[key].value = value
            else:
                entry = model.metadata_props.add()
                entry.key, entry.value = key, value
        onnx.save(model, str(tmp))
    return output


def relative_error(
    got: Sequence[np.ndarray[Any, Any]], want: Sequence[np.ndarray[Any, Any]]
) -> float:
    """The largest, over outputs, of ``||got - want|| / ||want||`` (L2 over the whole output)."""
    return max(
        float(np.linalg.norm(g.astype(np.float64) - w) / (np.linalg.norm(w) or 1.0))
        for g, w in zip(got, want, strict=True)
    )
