"""A PCA basis for embedding maps: fitted on a seeded sample, saved as safetensors, reused.

``--reduce pca:D`` projects every embedding vector onto the ``D`` leading principal components
of a sample of the scene's own vectors. The basis (mean, components, explained variance) is
saved beside the output as ``<output stem>.pca.safetensors`` with its provenance (ensemble
sha256, level, channel names) in the header, so ``--basis FILE`` can put several scenes into
one space; a basis fitted on another ensemble, level or channel list is refused.

The projection is affine, and blending is a weighted mean whose weights sum to one, so tiles
are projected before they are blended: the result equals blending first, at ``D`` channels
instead of all of them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from eosfm_cli.errors import ArtifactError, ProfileError

FloatArray = npt.NDArray[np.float32]

#: The ``safetensors`` header key holding the basis's provenance (JSON).
META_KEY = "eosfm_pca"


def parse_reduce(text: str) -> int | None:
    """``none`` → ``None``; ``pca:D`` → ``D``.

    Raises:
        ProfileError: for anything else, or ``D < 1``.
    """
    value = text.strip().lower()
    if value == "none":
        return None
    head, _, tail = value.partition(":")
    if head == "pca" and tail.isdigit() and int(tail) >= 1:
        return int(tail)
    raise ProfileError(
        f"unknown reduction {text!r}", where="`reduce=`", hint="use none or pca:D, e.g. pca:16"
    )


@dataclass
class PcaBasis:
    """The leading principal components of embedding vectors.

    Attributes:
        mean: ``(K,)`` mean vector.
        components: ``(D, K)`` unit components, by decreasing variance.
        explained: ``(D,)`` variance along each component.
        meta: provenance: ``ensemble_sha256``, ``level``, ``channels``, ``samples``, ``seed``.
    """

    mean: FloatArray
    components: FloatArray
    explained: FloatArray
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def dims(self) -> int:
        """Number of components ``D``."""
        return int(self.components.shape[0])

    def project(self, x: FloatArray) -> FloatArray:
        """Project ``(B, K, h, w)`` vectors onto the components: ``(B, D, h, w)``."""
        centred = x - self.mean[None, :, None, None]
        out: FloatArray = np.einsum("dk,bkhw->bdhw", self.components, centred).astype(np.float32)
        return out


def fit_pca(samples: FloatArray, dims: int, meta: dict[str, object] | None = None) -> PcaBasis:
    """Fit ``dims`` principal components to ``(N, K)`` sample vectors (float64 covariance).

    Each component's sign is fixed so that its largest-magnitude entry is positive, so the same
    sample always gives the same basis.

    Raises:
        ProfileError: when ``dims`` exceeds the vector length or the sample is too small.
    """
    n, k = samples.shape
    if dims > k:
        raise ProfileError(
            f"pca:{dims} asks for more components than the {k} embedding channels",
            where="`reduce=`",
            hint=f"use pca:D with D <= {k}",
        )
    if n < 2:
        raise ProfileError(
            f"{n} valid pixel(s) are too few to fit a PCA", where="`reduce=`", hint="use none"
        )
    x = samples.astype(np.float64)
    mean = x.mean(axis=0)
    x -= mean
    values, vectors = np.linalg.eigh(x.T @ x / (n - 1))
    order = np.argsort(values)[::-1][:dims]
    comps = vectors[:, order].T
    signs = np.sign(comps[np.arange(dims), np.abs(comps).argmax(axis=1)])
    comps *= np.where(signs == 0, 1.0, signs)[:, None]
    return PcaBasis(
        mean=mean.astype(np.float32),
        components=comps.astype(np.float32),
        explained=np.maximum(values[order], 0.0).astype(np.float32),
        meta=dict(meta or {}),
    )


def save_basis(path: Path, basis: PcaBasis) -> Path:
    """Write the basis as a canonical safetensors file (atomically)."""
    import torch

    from eosfm_cli.models.tensor_file import save_tensor_file

    tensors = {
        "mean": torch.from_numpy(basis.mean.copy()),
        "components": torch.from_numpy(basis.components.copy()),
        "explained_variance": torch.from_numpy(basis.explained.copy()),
    }
    return save_tensor_file(path, tensors, {META_KEY: json.dumps(basis.meta, sort_keys=True)})


def load_basis(path: Path) -> PcaBasis:
    """Read a basis written by :func:`save_basis` (no pickle: safetensors only).

    Raises:
        ArtifactError: when the file is missing, unreadable or not a PCA basis.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ArtifactError("PCA basis not found", where=str(path), hint="pass an existing file")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            header = fh.metadata() or {}
            arrays = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        meta = json.loads(header[META_KEY])
        basis = PcaBasis(
            mean=np.asarray(arrays["mean"], np.float32),
            components=np.asarray(arrays["components"], np.float32),
            explained=np.asarray(arrays["explained_variance"], np.float32),
            meta=dict(meta),
        )
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        raise ArtifactError(
            f"not a PCA basis written by `eosfm embed` ({type(err).__name__}: {err})",
            where=str(path),
            hint="pass a .pca.safetensors file that embed wrote",
        ) from None
    if basis.components.ndim != 2 or basis.components.shape[1] != basis.mean.shape[0]:
        raise ArtifactError("malformed PCA basis (shapes disagree)", where=str(path))
    return basis


def check_basis(
    basis: PcaBasis,
    path: Path,
    ensemble_sha256: str,
    level: int,
    channels: Sequence[str],
    dims: int,
) -> None:
    """Refuse a basis fitted on another ensemble, level or channel list, or of other size.

    Raises:
        ArtifactError: naming what differs.
        ProfileError: when ``reduce=`` asks for another number of components.
    """
    if basis.dims != dims:
        raise ProfileError(
            f"--reduce asks for pca:{dims}, the basis holds {basis.dims} components",
            where=str(path),
            hint=f"use --reduce pca:{basis.dims} with this basis",
        )
    for key, want in (("ensemble_sha256", ensemble_sha256), ("level", level)):
        if basis.meta.get(key) != want:
            raise ArtifactError(
                f"the PCA basis was fitted with {key} {basis.meta.get(key)!r}, this run has "
                f"{want!r}",
                where=str(path),
                hint="fit a new basis (drop --basis) or use the same ensemble and --level",
            )
    fitted = basis.meta.get("channels")
    if not isinstance(fitted, list) or fitted != list(channels):
        raise ArtifactError(
            "the PCA basis was fitted on other embedding channels (other active specialists)",
            where=str(path),
            hint="use the same input bands as the scene the basis was fitted on",
        )
