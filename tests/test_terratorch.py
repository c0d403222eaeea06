"""The ensemble as a terratorch backbone (``make test-terratorch``; skipped without terratorch).

The model section of ``docs/terratorch_segmentation.yaml``, the config the docs show, is built
as written (only the ensemble path and the class count are swapped for a tiny two-specialist
file) and runs a forward and one training step on the CPU.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import timm
import torch
import yaml

from eosfm_cli.models.native_file import save_ensemble
from eosfm_cli.models.reference_file import save_reference
from eosfm_cli.models.spec import SpecialistSpec

DOCS_CONFIG = Path(__file__).resolve().parents[1] / "docs" / "terratorch_segmentation.yaml"


def _spec(name: str, bands: list[str]) -> SpecialistSpec:
    n = len(bands)
    return SpecialistSpec(
        name=name,
        backbone="convnextv2_atto",
        bands=bands,
        mean=[1000.0] * n,
        std=[500.0] * n,
        dataset=name,
        task="classification",
        classes=["a", "b"],
        metrics={},
        versions={"timm": timm.__version__},
    )


def _weights(spec: SpecialistSpec, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = timm.create_model(spec.backbone, features_only=True, in_chans=spec.in_chans)
    return {k: v.clone() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module", params=["native", "reference"])
def ensemble_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("terratorch", reason="terratorch is not installed: make test-terratorch")
    specs = [_spec("s2_rgbn", ["B02", "B03", "B04", "B08"]), _spec("rgb", ["B04", "B03", "B02"])]
    states = [_weights(s, i) for i, s in enumerate(specs)]
    folder = tmp_path_factory.mktemp("ens")
    if request.param == "native":
        return save_ensemble(folder / "e.safetensors", specs, states)
    path = folder / "e.pth"
    save_reference(path, specs, states)
    return path


def test_without_terratorch_the_import_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "terratorch", None)
    monkeypatch.setitem(sys.modules, "terratorch.registry", None)
    monkeypatch.delitem(sys.modules, "eosfm_cli.integrations.terratorch", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'eosfm\[terratorch\]'"):
        importlib.import_module("eosfm_cli.integrations.terratorch")
    monkeypatch.delitem(sys.modules, "eosfm_cli.integrations.terratorch", raising=False)


def _task(ensemble: Path, classes: int) -> object:
    pytest.importorskip("terratorch", reason="terratorch is not installed: make test-terratorch")
    importlib.import_module("eosfm_cli.integrations.terratorch")
    from terratorch.tasks import SemanticSegmentationTask

    config = yaml.safe_load(DOCS_CONFIG.read_text())
    init_args = config["model"]["init_args"]
    init_args["model_args"]["backbone_ensemble"] = str(ensemble)
    init_args["model_args"]["num_classes"] = classes
    return SemanticSegmentationTask(**init_args)


def test_the_docs_config_builds_and_trains_one_step(ensemble_file: Path) -> None:
    task = _task(ensemble_file, classes=3)
    from terratorch.registry import BACKBONE_REGISTRY

    assert "eosfm" in BACKBONE_REGISTRY
    model = task.model  # type: ignore[attr-defined]
    encoder = model.encoder
    assert encoder.out_channels == encoder.feature_info.channels()
    assert encoder.ensemble.active_names == ["s2_rgbn", "rgb"] and len(encoder.out_channels) == 4

    torch.manual_seed(0)
    x = 1000.0 + 500.0 * torch.randn(2, 4, 64, 64)
    y = torch.randint(0, 3, (2, 64, 64))
    task.train()  # type: ignore[attr-defined]
    out = model(x).output
    assert out.shape == (2, 3, 64, 64) and torch.isfinite(out).all()

    frozen = {k: v.clone() for k, v in encoder.state_dict().items()}
    decoder = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and not any(p.requires_grad for p in encoder.parameters())
    opt = torch.optim.AdamW(trainable, lr=1e-3)
    loss = torch.nn.functional.cross_entropy(model(x).output, y)
    loss.backward()
    opt.step()
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, frozen[k]), f"frozen backbone weight {k} changed"
    assert any(not torch.equal(v, decoder[k]) for k, v in model.decoder.state_dict().items())
    # Specialists stay in eval mode while the task trains.
    assert not any(m.training for m in encoder.ensemble.specialists.modules())


def test_the_task_runs_its_own_training_step(ensemble_file: Path) -> None:
    task = _task(ensemble_file, classes=3)
    torch.manual_seed(1)
    batch = {
        "image": 1000.0 + 500.0 * torch.randn(2, 4, 32, 32),
        "mask": torch.randint(0, 3, (2, 32, 32)),
    }
    loss = task.training_step(batch, 0)  # type: ignore[attr-defined]
    value = loss["loss"] if isinstance(loss, dict) else loss
    assert torch.isfinite(value)


def test_the_docs_page_shows_the_tested_config() -> None:
    page = (DOCS_CONFIG.parent / "terratorch.md").read_text()
    assert DOCS_CONFIG.read_text() in page
