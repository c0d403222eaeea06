"""Exported graphs run on a runtime: one callable, a float32 batch in, numpy outputs out.

:func:`load_graph` opens an ``eosfm export-model`` file on ``torch`` (``.pt2``, through
:func:`torch.export.load`), ``onnxruntime`` or ``openvino`` (``.onnx``); the two last are
optional extras (``pip install 'eosfm[onnx]'``, ``'eosfm[openvino]'``), and a missing one is a
one-line error naming the extra. The returned :class:`GraphRunner` is what a tile loop calls:

- ``predict`` wraps it with :func:`head_graph_tile_fn` (probabilities or values per tile);
- ``embed`` can wrap a ``--features-only`` export with :func:`features_graph_tile_fn`, which
  returns the same ``(B, C, h, w)`` level features as its PyTorch per-tile function.

**Which runtime ``auto`` picks** (:func:`resolve_runtime`): PyTorch on a GPU; on a CPU, the
fastest installed runtime by the figures of ``bench/bench_runtime.py`` on the 6-specialist
ensemble (:data:`CPU_PREFERENCE`, fastest first); PyTorch when neither extra is installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from eosfm_cli.errors import ArtifactError, ProfileError
from eosfm_cli.inference.graph_export import missing_extra, read_graph_metadata
from eosfm_cli.inference.tiling import FloatArray

Runtime = Literal["torch", "onnxruntime", "openvino"]
RUNTIMES: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
#: The pip extra each optional runtime comes with.
EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino"}
#: The CPU runtimes ``auto`` tries, fastest first, as bench_runtime measured them.
CPU_PREFERENCE: tuple[Runtime, ...] = ("openvino", "onnxruntime")
#: The format each runtime reads.
FORMATS = {"torch": "pt2", "onnxruntime": "onnx", "openvino": "onnx"}


def runtime_installed(runtime: str) -> bool:
    """Whether ``runtime`` can be imported here (``torch`` always can)."""
    return runtime == "torch" or importlib.util.find_spec(runtime) is not None


def resolve_runtime(runtime: str, device_type: str = "cpu") -> Runtime:
    """What ``runtime`` means here: ``auto`` resolved by the rule of the module docstring.

    Raises:
        ProfileError: for an unknown runtime.
    """
    if runtime == "auto":
        if device_type != "cpu":
            return "torch"
        return next((r for r in CPU_PREFERENCE if runtime_installed(r)), "torch")
    if runtime not in RUNTIMES:
        raise ProfileError(
            f"unknown runtime {runtime!r}", where="--runtime", hint="torch, onnxruntime, openvino"
        )
    return runtime  # type: ignore[return-value]


class GraphRunner:
    """An exported graph loaded on one runtime; call it with a ``float32`` batch.

    Args:
        path: the ``.onnx`` (onnxruntime, openvino) or ``.pt2`` (torch) file.
        runtime: where it runs.
        threads: intra-op threads (default: the runtime's own choice).

    Attributes:
        metadata: the file's ``eosfm`` metadata (bands, classes, outputs, shapes).
        output_names: the graph's outputs, in the order :meth:`__call__` returns them.

    Raises:
        ArtifactError: when the runtime's extra is missing, or it cannot read this file.
    """

    def __init__(self, path: Path, runtime: Runtime, threads: int | None = None) -> None:
        self.path = Path(path)
        self.runtime = runtime
        self.metadata = read_graph_metadata(self.path)
        self.output_names: list[str] = list(self.metadata.get("output_names", []))
        fmt = self.metadata.get("format")
        if fmt != FORMATS[runtime]:
            raise ArtifactError(
                f"{runtime} runs {FORMATS[runtime]} files, not {fmt}",
                where=str(self.path),
                hint=f"export with `eosfm export-model --format {FORMATS[runtime]}`",
            )
        if not runtime_installed(runtime):
            raise missing_extra(f"--runtime {runtime}", runtime, EXTRAS[runtime])
        self._run = _LOADERS[runtime](self.path, threads)

    def __call__(self, batch: np.ndarray[Any, Any]) -> list[FloatArray]:
        """Run the graph on ``[B, C, H, W]`` raw values; one array per output name."""
        return self._run(np.ascontiguousarray(batch, dtype=np.float32))


def load_graph(path: Path, runtime: Runtime, threads: int | None = None) -> GraphRunner:
    """Open an exported graph on ``runtime`` (see :class:`GraphRunner`)."""
    return GraphRunner(path, runtime, threads)


RunFn = Callable[[np.ndarray[Any, Any]], list[FloatArray]]


def _torch_loader(path: Path, threads: int | None) -> RunFn:
    import torch

    module = torch.export.load(str(path)).module()

    def run(batch: np.ndarray[Any, Any]) -> list[FloatArray]:
        with torch.inference_mode():
            out = module(torch.from_numpy(batch))
        return [o.numpy() for o in out]

    return run


def _onnxruntime_loader(path: Path, threads: int | None) -> RunFn:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own, untyped, errors
        raise ArtifactError(f"onnxruntime cannot load it ({err})", where=str(path)) from None
    name = session.get_inputs()[0].name

    def run(batch: np.ndarray[Any, Any]) -> list[FloatArray]:
        return list(session.run(None, {name: batch}))

    return run


def _openvino_loader(path: Path, threads: int | None) -> RunFn:
    import openvino as ov

    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    try:
        compiled = ov.Core().compile_model(str(path), "CPU", config)
    except Exception as err:  # openvino raises RuntimeError with multi-line reports
        first = str(err).strip().split("\n")[0][:300]
        raise ArtifactError(f"openvino cannot load it ({first})", where=str(path)) from None
    request = compiled.create_infer_request()
    outputs = compiled.outputs

    def run(batch: np.ndarray[Any, Any]) -> list[FloatArray]:
        result = request.infer({0: batch})
        return [np.asarray(result[o]) for o in outputs]

    return run


_LOADERS: dict[str, Callable[[Path, int | None], RunFn]] = {
    "torch": _torch_loader,
    "onnxruntime": _onnxruntime_loader,
    "openvino": _openvino_loader,
}


def head_graph_tile_fn(runner: GraphRunner) -> Callable[[Any], FloatArray]:
    """A head export as predict's per-tile function: probabilities (or values) per tile.

    Returns ``(B, K, T, T)`` for dense heads and ``(B, K, 1, 1)`` for pooled ones, as
    :func:`eosfm_cli.inference.heads.tile_outputs` does for the PyTorch path.
    """

    def run(batch: Any) -> FloatArray:
        out = runner(batch.numpy())[0].astype(np.float32, copy=False)
        return out[:, :, None, None] if out.ndim == 2 else out

    return run


def features_graph_tile_fn(runner: GraphRunner, level: int) -> Callable[[Any], FloatArray]:
    """A ``--features-only`` export as a per-tile function: pyramid level ``level``.

    Raises:
        ArtifactError: when the export does not hold that level.
    """
    names: Sequence[str] = runner.output_names
    if f"level{level}" not in names:
        raise ArtifactError(
            f"this export has no pyramid level {level} (it has {', '.join(names) or 'none'})",
            where=str(runner.path),
            hint="export the encoder with `eosfm export-model --features-only`",
        )
    index = list(names).index(f"level{level}")

    def run(batch: Any) -> FloatArray:
        return runner(batch.numpy())[index].astype(np.float32, copy=False)

    return run
