"""fit-head, select-encoders and evaluate on the committed synthetic fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from training_helpers import DIOR, dior_head_ctx

from eosfm_cli.bands import BAND_SETS
from eosfm_cli.context import resolve
from eosfm_cli.errors import ArtifactError, ProfileError
from eosfm_cli.models.ensemble import EosFM
from eosfm_cli.models.native_file import read_metadata, save_ensemble
from eosfm_cli.models.spec import SpecialistSpec
from eosfm_cli.stages.evaluate import evaluate
from eosfm_cli.stages.fit_head import fit_head
from eosfm_cli.stages.select_encoders import select_encoders

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "profiles" / "default.yaml"
SYNTHETIC = REPO / "tests" / "data" / "synthetic"


def _spec(name: str, bands: list[str], mean: float, std: float) -> SpecialistSpec:
    return SpecialistSpec(
        name=name,
        backbone="convnextv2_atto",
        bands=bands,
        mean=[mean] * len(bands),
        std=[std] * len(bands),
    )


def _weights(in_chans: int, seed: int, constant: bool = False) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = timm.create_model("convnextv2_atto", features_only=True, in_chans=in_chans)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if constant:  # a specialist whose features do not depend on its input at all
        state["stem_0.weight"].zero_()
    return state


@pytest.fixture(scope="module")
def ensemble_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four specialists: two that see the input, two whose features are constant."""
    path = tmp_path_factory.mktemp("ens") / "ensemble.safetensors"
    s2 = list(BAND_SETS["S2_ALL"])
    rgb = list(BAND_SETS["S2_RGB"])
    specs = [
        _spec("const_a", s2, 1500, 1000),
        _spec("s2_signal", s2, 1500, 1000),
        _spec("const_b", rgb, 1000, 800),
        _spec("rgb_signal", rgb, 1000, 800),
    ]
    states = [_weights(13, 0, True), _weights(13, 1), _weights(3, 2, True), _weights(3, 3)]
    save_ensemble(path, specs, states)
    return path


def _resaved(src: Path, dst: Path) -> Path:
    """The same specialists in another order: another file, another sha256."""
    from eosfm_cli.models.native_file import load_ensemble

    entries = load_ensemble(src)[::-1]
    save_ensemble(dst, [e[0] for e in entries], [e[1] for e in entries])
    return dst


def _ctx(ws: Path, *sets: str):
    base = [
        "trainer.max_epochs=2",
        "trainer.batch_size=4",
        "trainer.lr=0.003",
        "emissions.enabled=false",
        "downstream.dataset=synthetic_s2",
        "downstream.bands=[B02, B03, B04, B08]",
    ]
    return resolve(DEFAULT, [*base, *sets], root=SYNTHETIC, workspace=ws)


def test_fit_head_writes_a_run(tmp_path: Path, ensemble_path: Path) -> None:
    res = fit_head(_ctx(tmp_path / "ws"), ensemble=ensemble_path)
    assert res is not None
    folder = tmp_path / "ws" / "heads" / "synthetic_s2"
    for name in ("head.safetensors", "head.json", "metrics.json", "gates.json"):
        assert (folder / name).is_file()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert {"accuracy", "f1_macro"} <= set(metrics["test"])
    meta = json.loads((folder / "head.json").read_text())
    assert meta["config"]["input_bands"] == ["B02", "B03", "B04", "B08"]
    assert "feature cache built" in res.cache


def test_cache_equals_streaming(tmp_path: Path, ensemble_path: Path) -> None:
    """The cached features are the streamed ones (fp16 storage aside), sample by sample."""
    from eosfm_cli.features import CachedFeatures
    from eosfm_cli.head_runs import load_head_run

    ws = tmp_path / "a"
    cached = fit_head(_ctx(ws), ensemble=ensemble_path)
    again = fit_head(_ctx(ws), ensemble=ensemble_path, run="again")
    stream = fit_head(_ctx(tmp_path / "b", "cache.enabled=false"), ensemble=ensemble_path)
    assert cached is not None and again is not None and stream is not None
    assert "built" in cached.cache and "reused" in again.cache and "stream" in stream.cache
    # The same cache, read twice, gives the same run.
    for split in ("val", "test"):
        assert cached.metrics[split] == again.metrics[split]

    model, _, _, datasets, _ = load_head_run(_ctx(ws), "synthetic_s2")
    model.eval()
    entries = {}
    for folder in (ws / "cache" / "features").iterdir():
        meta = json.loads((folder / "meta.json").read_text())
        entries[meta["key_parts"]["split"]] = CachedFeatures(folder, meta)
    assert set(entries) == {"train", "val", "test"}
    for split, entry in entries.items():
        ds = datasets[split]
        assert len(entry) == len(ds) > 0
        for i in range(len(ds)):
            sample = ds[i]
            x = sample["image"][None]
            with torch.inference_mode():
                fresh = model.specialist_features(x)
                logits_stream = model(x)
                got = entry[i]
                logits_cached = model.head_forward(
                    [[f[None] for f in pyr] for pyr in got["features"]], tuple(x.shape[-2:])
                )
            assert torch.equal(got["target"], sample["label"])
            assert len(fresh) == len(got["features"])
            for pyr_fresh, pyr_cached in zip(fresh, got["features"], strict=True):
                for f, c in zip(pyr_fresh, pyr_cached, strict=True):
                    assert f.shape[1:] == c.shape
                    # fp16 storage: relative error below 2**-10 of the level's scale
                    scale = f.abs().max().clamp_min(1e-6)
                    assert (f[0] - c).abs().max() <= 1e-3 * scale, (split, i)
            torch.testing.assert_close(logits_cached, logits_stream, rtol=1e-2, atol=1e-2)


def test_stale_or_corrupt_cache_is_rebuilt(
    tmp_path: Path, ensemble_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "ws"
    fit_head(_ctx(ws, "trainer.max_epochs=1"), ensemble=ensemble_path)
    entries = [p for p in (ws / "cache" / "features").iterdir() if p.is_dir()]
    assert len(entries) == 3
    victim = next(entries[0].glob("f0_0_0.npy"))
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    capsys.readouterr()
    res = fit_head(_ctx(ws, "trainer.max_epochs=1"), ensemble=ensemble_path)
    assert res is not None and "built" in res.cache
    assert "corrupt" in capsys.readouterr().out
    # A changed ensemble gives another key: the old entries are not used.
    other = _resaved(ensemble_path, tmp_path / "other.safetensors")
    res = fit_head(_ctx(ws, "trainer.max_epochs=1"), ensemble=other, run="other")
    assert res is not None and "built" in res.cache


def test_impossible_k(tmp_path: Path, ensemble_path: Path) -> None:
    with pytest.raises(ProfileError, match="K=5"):
        fit_head(_ctx(tmp_path / "ws", "ensemble.max_encoders=5"), ensemble=ensemble_path)


def test_missing_ensemble(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="export-ensemble"):
        fit_head(_ctx(tmp_path / "ws"))


@pytest.fixture(scope="module")
def synthetic60(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from eosfm_cli.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("syn") / "data", n=60, size=32, seed=3)


def test_selection_prefers_informative_specialists(
    tmp_path: Path, ensemble_path: Path, synthetic60: Path
) -> None:
    hits = 0
    for seed in (0, 1, 2):
        ws = tmp_path / f"ws{seed}"
        ctx = _ctx(
            ws,
            f"seed={seed}",
            "trainer.max_epochs=8",
            "trainer.batch_size=8",
            f"data.root={synthetic60}",
        )
        sel = select_encoders(ctx, k=2, ensemble=ensemble_path)
        assert sel is not None
        hits += set(sel["selected"]) == {"s2_signal", "rgb_signal"}
        values = dict(zip(sel["names"], sel["gate_values"], strict=True))
        # Specialists with features received gradient, selected or not.
        assert abs(values["s2_signal"]) > 1e-3 and abs(values["rgb_signal"]) > 1e-3
        history = json.loads((ws / "heads" / sel["run"] / "gates.json").read_text())
        assert len(history["per_epoch"]) == 8
        assert set(sel["ablation"]) == set(sel["selected"])
    assert hits >= 2


def test_pruned_ensemble_matches_full(tmp_path: Path, ensemble_path: Path) -> None:
    ws = tmp_path / "ws"
    sel = select_encoders(_ctx(ws, "trainer.max_epochs=2"), k=2, ensemble=ensemble_path)
    assert sel is not None
    pruned = ws / sel["pruned_ensemble"]
    assert [s.name for s in read_metadata(pruned)] == [
        n for n in ("const_a", "s2_signal", "const_b", "rgb_signal") if n in sel["selected"]
    ]
    bands = ["B02", "B03", "B04", "B08"]
    full = EosFM.from_file(ensemble_path, input_bands=bands)
    small = EosFM.from_file(pruned, input_bands=bands)
    x = torch.rand(2, 4, 64, 64) * 3000
    full_feats = full.specialist_features(x)
    small_feats = small.specialist_features(x)
    keep = [full.active_names.index(n) for n in small.active_names]
    for i, j in enumerate(keep):
        for a, b in zip(small_feats[i], full_feats[j], strict=True):
            assert torch.equal(a, b)


def test_evaluate_writes_report(tmp_path: Path, ensemble_path: Path) -> None:
    ws = tmp_path / "ws"
    fit_head(_ctx(ws, "trainer.max_epochs=1"), ensemble=ensemble_path)
    results = evaluate(_ctx(ws))
    assert results is not None and "synthetic_s2" in results
    out = ws / "eval" / "synthetic_s2"
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "f1_macro", "confusion_matrix"} <= set(metrics)
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["n_test"]
    for png in ("confusion.png", "per_class.png", "overlays.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_head_from_another_ensemble_is_refused(tmp_path: Path, ensemble_path: Path) -> None:
    from eosfm_cli.models.head_file import load_generalist

    ws = tmp_path / "ws"
    fit_head(_ctx(ws, "trainer.max_epochs=1"), ensemble=ensemble_path)
    other = _resaved(ensemble_path, tmp_path / "other.safetensors")
    with pytest.raises(ArtifactError, match="another ensemble"):
        load_generalist(ws / "heads" / "synthetic_s2", other)


def test_bf16_ensemble_option_gets_its_own_cache(tmp_path: Path, ensemble_path: Path) -> None:
    ws = tmp_path / "ws"
    fp32 = fit_head(
        _ctx(ws, "trainer.max_epochs=1", "ensemble.precision=fp32"), ensemble=ensemble_path
    )
    bf16 = fit_head(
        _ctx(ws, "trainer.max_epochs=1", "ensemble.precision=bf16"),
        ensemble=ensemble_path,
        run="bf16",
    )
    assert fp32 is not None and bf16 is not None
    assert "built" in bf16.cache  # bf16 features are not the fp32 ones
    meta = json.loads((ws / "heads" / "bf16" / "head.json").read_text())
    assert meta["config"]["ensemble_options"]["precision"] == "bf16"
    assert {"accuracy", "f1_macro"} <= set(bf16.metrics["test"])


@pytest.fixture(scope="module")
def detection_ws(tmp_path_factory: pytest.TempPathFactory, ensemble_path: Path) -> Path:
    """A detection head fitted on the DIOR fixture over the frozen ensemble (K=1 gates)."""
    ws = tmp_path_factory.mktemp("det") / "ws"
    select_encoders(dior_head_ctx(ws, "trainer.max_epochs=2"), k=1, ensemble=ensemble_path)
    return ws


def test_detection_head_is_fitted_over_the_frozen_ensemble(detection_ws: Path) -> None:
    folder = detection_ws / "heads" / "select-dior-k1"
    meta = json.loads((folder / "head.json").read_text())
    assert meta["config"]["task"] == "detection"
    # Only the RGB specialists can see DIOR's R, G, B.
    assert meta["active_specialists"] == ["const_b", "rgb_signal"]
    metrics = json.loads((folder / "metrics.json").read_text())
    for split in ("val", "test"):
        assert {"map", "map_50", "map_75", "mar_100"} <= set(metrics[split])
        # torchmetrics reports -1 when a split has no ground-truth box: the fixture has some.
        assert all(0.0 <= metrics[split][k] <= 1.0 for k in ("map", "map_50", "mar_100")), metrics
    # The stored state holds the detector and the gates, never the frozen specialists.
    from safetensors.torch import load_file

    keys = load_file(str(folder / "head.safetensors"))
    assert any(k.startswith("head.rpn.") for k in keys)
    assert any(k.startswith("head.roi_heads.") for k in keys)
    assert any(k.startswith("gates.") for k in keys)
    assert not any(k.startswith("encoder.specialists.") for k in keys)
    selection = json.loads((detection_ws / "selection" / "select-dior-k1.json").read_text())
    assert selection["metric"] == "map" and len(selection["selected"]) == 1
    assert set(selection["ablation"]) == set(selection["selected"])


def test_detection_head_reloads_to_the_same_boxes(detection_ws: Path, ensemble_path: Path) -> None:
    from eosfm_cli.models.head_file import load_generalist

    model, _ = load_generalist(detection_ws / "heads" / "select-dior-k1", ensemble_path)
    again, _ = load_generalist(detection_ws / "heads" / "select-dior-k1", ensemble_path)
    torch.manual_seed(0)
    images = [torch.rand(3, 64, 64) * 255, torch.rand(3, 96, 96) * 255]
    with torch.inference_mode():
        a, b = model.detect(images), again.detect(images)
    assert len(a) == 2
    for da, db in zip(a, b, strict=True):
        assert set(da) == {"boxes", "scores", "labels"}
        assert torch.equal(da["boxes"], db["boxes"]) and torch.equal(da["labels"], db["labels"])
        assert (da["labels"] >= 0).all() and (da["labels"] < 20).all()
    with pytest.raises(ArtifactError, match="detect"):
        model(images[0][None])


def test_evaluate_reports_detection_map_and_draws_boxes(detection_ws: Path) -> None:
    results = evaluate(dior_head_ctx(detection_ws), ["select-dior-k1"])
    assert results is not None
    out = detection_ws / "eval" / "select-dior-k1"
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"map", "map_50", "mar_100", "ap_per_class", "classes"} <= set(metrics)
    assert len(metrics["ap_per_class"]) == len(metrics["classes"]) == 20
    assert metrics["n_test"] == 2
    for png in ("per_class.png", "overlays.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dataset_flag_brings_that_datasets_bands(tmp_path: Path) -> None:
    from eosfm_cli.downstream import downstream_spec

    sets = [f"downstream.root={DIOR}"]
    # default.yaml's downstream.bands (B02, B03, B04, B08) belong to its synthetic_seg task.
    ctx = resolve(DEFAULT, sets, workspace=tmp_path / "ws")
    assert ctx.profile.downstream.bands == ["B02", "B03", "B04", "B08"]
    assert downstream_spec(ctx, "dior")[2] == ["R", "G", "B"]
    # Bands the user sets on the command line are honoured.
    ctx = resolve(DEFAULT, [*sets, "downstream.bands=[G, R]"], workspace=tmp_path / "ws")
    assert downstream_spec(ctx, "dior")[2] == ["G", "R"]
    # Without --dataset, the profile's own pair stands.
    ctx = resolve(DEFAULT, [], workspace=tmp_path / "ws")
    assert downstream_spec(ctx, None)[2] == ["B02", "B03", "B04", "B08"]
