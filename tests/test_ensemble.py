"""The EosFM encoder: same features as the specialists run by hand, and its options."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from eosfm_cli.bands import BAND_SETS
from eosfm_cli.errors import ArtifactError, BandError, DataError
from eosfm_cli.models import EosFM
from eosfm_cli.models.native_file import read_metadata, save_ensemble
from eosfm_cli.models.reference_file import save_reference
from eosfm_cli.models.spec import SpecialistSpec

S2_ALL = list(BAND_SETS["S2_ALL"])
# Input bands in a deliberately odd order: S1 first, then S2 shuffled.
INPUT_BANDS = ["VH", "VV", "B8A", "B03", "B11", "B01", "B04", "B12", "B02", "B10", "B06"]
INPUT_BANDS += ["B07", "B05", "B09", "B08"]


def make_spec(
    name: str,
    bands: list[str],
    backbone: str = "convnextv2_atto",
    out_indices: list[int] | None = None,
    seed: int = 0,
) -> SpecialistSpec:
    g = torch.Generator().manual_seed(seed)
    n = len(bands)
    mean = (torch.rand(n, generator=g) * 2000).tolist()
    std = (torch.rand(n, generator=g) * 500 + 100).tolist()
    return SpecialistSpec(name, backbone, bands, mean, std, out_indices=out_indices)


def make_weights(spec: SpecialistSpec, seed: int) -> dict[str, torch.Tensor]:
    """Random weights, perturbed so that no layer is at its (often trivial) initial value."""
    torch.manual_seed(seed)
    options = {} if spec.out_indices is None else {"out_indices": tuple(spec.out_indices)}
    model = timm.create_model(
        spec.backbone, pretrained=False, features_only=True, in_chans=spec.in_chans, **options
    )
    state = {}
    for key, value in model.state_dict().items():
        if not value.is_floating_point():
            state[key] = value.clone()
        elif key.endswith("running_var"):
            state[key] = torch.rand_like(value) + 0.5
        else:
            state[key] = value + 0.05 * torch.randn_like(value)
    return state


def by_hand(
    spec: SpecialistSpec, state: dict[str, torch.Tensor], x: torch.Tensor, bands: list[str]
) -> list[torch.Tensor]:
    """Run one specialist the long way: select its bands by name, normalise, run timm."""
    options = {} if spec.out_indices is None else {"out_indices": tuple(spec.out_indices)}
    model = timm.create_model(
        spec.backbone, pretrained=False, features_only=True, in_chans=spec.in_chans, **options
    )
    model.load_state_dict(state)
    model.eval()
    idx = [bands.index(b) for b in spec.bands]
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    with torch.no_grad():
        return list(model((x[:, idx] - mean) / std))


def raw_input(bands: list[str], specs: list[SpecialistSpec], size: tuple[int, int] = (64, 64)):
    """Raw values around each band's training statistics (so normalised values are ~N(0, 1))."""
    torch.manual_seed(123)
    stats = {
        b: (m, s)
        for spec in specs
        for b, m, s in zip(spec.bands, spec.mean, spec.std, strict=False)
    }
    x = torch.randn(2, len(bands), *size)
    for i, b in enumerate(bands):
        m, s = stats.get(b, (0.0, 1.0))
        x[:, i] = x[:, i] * s + m
    return x


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run fastest, and steadiest on a shared machine, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trio() -> tuple[list[SpecialistSpec], list[dict[str, torch.Tensor]]]:
    specs = [
        make_spec("eurosat_rgb", ["B04", "B03", "B02"], seed=1),
        make_spec("ben_s1", ["VV", "VH", "VH"], seed=2),
        make_spec("eurosat_s2", S2_ALL, seed=3),
    ]
    return specs, [make_weights(s, i) for i, s in enumerate(specs)]


Trio = tuple[list[SpecialistSpec], list[dict[str, torch.Tensor]]]


def test_safetensors_round_trip_matches_specialists_run_by_hand(tmp_path: Path, trio: Trio) -> None:
    specs, states = trio
    path = save_ensemble(tmp_path / "e.safetensors", specs, states)
    encoder = EosFM.from_file(path, input_bands=INPUT_BANDS)
    assert encoder.active_names == ["eurosat_rgb", "ben_s1", "eurosat_s2"]
    x = raw_input(INPUT_BANDS, specs)
    per_specialist = encoder.specialist_features(x)
    fused = encoder(x)
    wants = [by_hand(s, w, x, INPUT_BANDS) for s, w in zip(specs, states, strict=True)]
    for got_pyramid, want_pyramid in zip(per_specialist, wants, strict=True):
        for got, ref in zip(got_pyramid, want_pyramid, strict=True):
            assert got.shape == ref.shape
            assert (got - ref).abs().max().item() <= 1e-5
    for level, out in enumerate(fused):
        ref = torch.cat([want[level] for want in wants], dim=1)
        assert (out - ref).abs().max().item() <= 1e-5


def test_reference_file_uses_identity_normalisation(tmp_path: Path, trio: Trio) -> None:
    specs, states = trio
    path = tmp_path / "e.pth"
    save_reference(path, specs[:1], states[:1])
    encoder = EosFM.from_file(path, input_bands=["B02", "B03", "B04"])
    x = torch.randn(1, 3, 64, 64)
    identity = SpecialistSpec("r", "convnextv2_atto", ["B04", "B03", "B02"], [0.0] * 3, [1.0] * 3)
    want = by_hand(identity, states[0], x, ["B02", "B03", "B04"])
    for got, ref in zip(encoder(x), want, strict=True):
        assert (got - ref).abs().max().item() <= 1e-5


def test_reference_file_with_inferred_bands_reports_assumptions(tmp_path: Path, trio: Trio) -> None:
    _, states = trio
    path = tmp_path / "ref.pth"
    torch.save([(3, states[0], {"backbone": "timm_convnextv2_atto"})], path)
    encoder = EosFM.from_file(path, input_bands=S2_ALL)
    assert any("assumed B04,B03,B02" in a for a in encoder.assumptions)
    assert "assumed" in encoder.explain()
    encoder = EosFM.from_file(path, input_bands=["VV", "VH"], bands=[["VV", "VH", "VH"]])
    assert encoder.active_names == ["specialist_0"]


def test_from_file_skips_weights_of_inactive_specialists(tmp_path: Path, trio: Trio) -> None:
    specs, states = trio
    path = save_ensemble(tmp_path / "e.safetensors", specs, states)
    encoder = EosFM.from_file(path, input_bands=["VV", "VH"])
    assert encoder.active_names == ["ben_s1"]
    assert len(encoder.specialists) == 1
    # Inactive specialists need no weights at all.
    direct = EosFM(specs, [None, states[1], None], ["VV", "VH"])
    assert direct.active_names == ["ben_s1"]
    with pytest.raises(ArtifactError, match="no weights"):
        EosFM(specs, [None, None, None], ["VV", "VH"])


def test_out_channels_and_reductions_match_the_features(trio: Trio) -> None:
    specs, states = trio
    encoder = EosFM(specs, states, INPUT_BANDS)
    assert encoder.out_channels == [120, 240, 480, 960]
    assert encoder.reductions == [4, 8, 16, 32]
    out = encoder(raw_input(INPUT_BANDS, specs))
    assert [f.shape[1] for f in out] == encoder.out_channels
    assert [64 // f.shape[-1] for f in out] == encoder.reductions
    assert "eurosat_s2" in repr(encoder)


def test_band_plans_pick_active_specialists(trio: Trio) -> None:
    specs, states = trio
    rgb = EosFM(specs, states, ["B02", "B03", "B04"])
    assert rgb.active_names == ["eurosat_rgb"]  # S1 inactive, S2 below coverage
    text = rgb.explain()
    assert "ben_s1" in text and "inactive" in text and "skipped" in text
    relaxed = EosFM(specs, states, ["B02", "B03", "B04"], min_coverage=0.3)
    assert relaxed.active_names == ["eurosat_rgb", "eurosat_s2"]
    forced = EosFM(specs, states, S2_ALL, force={"eurosat_s2": "inactive"})
    assert forced.active_names == ["eurosat_rgb"]


def test_ablate_removes_a_specialist(trio: Trio) -> None:
    specs, states = trio
    full = EosFM(specs, states, INPUT_BANDS)
    ablated = EosFM(specs, states, INPUT_BANDS, ablate=["ben_s1"])
    assert ablated.active_names == ["eurosat_rgb", "eurosat_s2"]
    assert ablated.out_channels == [80, 160, 320, 640]
    x = raw_input(INPUT_BANDS, specs)
    a, b = full(x), ablated(x)
    # The ablated output equals the full output without ben_s1's channel block.
    for level, channels in enumerate((40, 80, 160, 320)):
        keep = torch.cat([a[level][:, :channels], a[level][:, 2 * channels :]], 1)
        assert torch.allclose(keep, b[level], atol=1e-6)


def test_no_runnable_specialist_lists_the_reasons(trio: Trio) -> None:
    specs, states = trio
    with pytest.raises(BandError) as info:
        EosFM(specs[1:2], states[1:2], ["B04", "B03", "B02"])
    assert "ben_s1" in str(info.value) and "SAR" in str(info.value)
    with pytest.raises(BandError, match="ablated"):
        EosFM(specs[:1], states[:1], ["B04", "B03", "B02"], ablate=["eurosat_rgb"])


@pytest.mark.parametrize("kind", ["batch", "layer"])
def test_normalize_features(trio: Trio, kind: str) -> None:
    specs, states = trio
    encoder = EosFM(
        specs[:2], states[:2], INPUT_BANDS, normalize_features=True, normalization_type=kind
    )
    assert encoder.feature_norms is not None
    assert len(encoder.feature_norms) == 2 and len(encoder.feature_norms[0]) == 4
    encoder.train()
    out = encoder(raw_input(INPUT_BANDS, specs))
    assert [f.shape[1] for f in out] == encoder.out_channels == [80, 160, 320, 640]
    first = out[0][:, :40]  # the first specialist's block at level 0
    if kind == "batch":
        assert first.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    else:
        assert first.mean(dim=(1, 2, 3)).abs().max() < 1e-4


def test_conv1x1_fusion_shapes_and_gradients(trio: Trio) -> None:
    specs, states = trio
    encoder = EosFM(specs, states, INPUT_BANDS, fusion="conv1x1", fuse_to_mult=0.5)
    assert encoder.out_channels == [20, 40, 80, 160]
    out = encoder(raw_input(INPUT_BANDS, specs))
    assert [f.shape[1] for f in out] == [20, 40, 80, 160]
    sum(f.mean() for f in out).backward()
    assert encoder.fusion_layers is not None
    assert all(p.grad is not None for p in encoder.fusion_layers.parameters())
    assert all(p.grad is None for p in encoder.specialists.parameters())


def test_freeze_keeps_specialists_in_eval_and_inference_mode(trio: Trio) -> None:
    specs, states = trio
    encoder = EosFM(specs[:1], states[:1], ["B04", "B03", "B02"], normalize_features=True)
    seen: list[bool] = []
    encoder.specialists[0].register_forward_hook(
        lambda *_: seen.append(torch.is_inference_mode_enabled())
    )
    encoder.train()
    assert encoder.training and encoder.feature_norms is not None
    assert encoder.feature_norms[0][0].training
    assert not any(m.training for m in encoder.specialists.modules())
    assert not any(p.requires_grad for p in encoder.specialists.parameters())
    x = torch.randn(2, 3, 64, 64) * 300 + 800
    out = encoder(x)
    assert seen == [True]
    # The features are ordinary tensors: a trainable head can learn from them.
    assert not out[-1].is_inference()
    head = nn.Conv2d(320, 2, 1)
    head(out[-1]).mean().backward()
    assert head.weight.grad is not None
    # Under the caller's own inference mode no copy is made.
    with torch.inference_mode():
        assert encoder(x)[0].is_inference()


def test_unfrozen_specialists_train(trio: Trio) -> None:
    specs, states = trio
    encoder = EosFM(specs[:1], states[:1], ["B04", "B03", "B02"], freeze=False)
    seen: list[bool] = []
    encoder.specialists[0].register_forward_hook(
        lambda *_: seen.append(torch.is_inference_mode_enabled())
    )
    encoder.train()
    assert encoder.specialists[0].training
    out = encoder(torch.randn(2, 3, 32, 32))
    sum(f.mean() for f in out).backward()
    assert seen == [False]
    assert all(p.grad is not None for p in encoder.specialists.parameters() if p.requires_grad)


def test_non_divisible_input_is_reflect_padded_and_cropped(trio: Trio) -> None:
    specs, states = trio
    spec, state = specs[0], states[0]
    encoder = EosFM([spec], [state], ["B04", "B03", "B02"])
    x = raw_input(["B04", "B03", "B02"], [spec], size=(70, 50))
    out = encoder(x)
    assert [tuple(f.shape[-2:]) for f in out] == [(18, 13), (9, 7), (5, 4), (3, 2)]
    padded = F.pad(x, (0, 14, 0, 26), mode="reflect")  # to 96 x 64
    want = by_hand(spec, state, padded, ["B04", "B03", "B02"])
    for got, ref in zip(out, want, strict=True):
        h, w = got.shape[-2:]
        assert (got - ref[..., :h, :w]).abs().max().item() <= 1e-5
    tiny = encoder(torch.randn(1, 3, 9, 5) * 300 + 800)  # too small to reflect: replicated
    assert [tuple(f.shape[-2:]) for f in tiny] == [(3, 2), (2, 1), (1, 1), (1, 1)]


def test_input_errors(trio: Trio) -> None:
    specs, states = trio
    encoder = EosFM(specs[:1], states[:1], ["B04", "B03", "B02"])
    x = torch.randn(1, 3, 32, 32)
    x[0, 1, 3, 4] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        encoder(x)
    with pytest.raises(BandError, match="4 channels but 3 input bands"):
        encoder(torch.randn(1, 4, 32, 32))
    with pytest.raises(DataError, match="B, C, H, W"):
        encoder(torch.randn(3, 32, 32))
    # Integer images are accepted and cast to the model's dtype.
    assert encoder(torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8))[0].dtype == (
        torch.float32
    )


def test_mixed_backbones_need_matching_reductions() -> None:
    convnext = make_spec("atto", ["B04", "B03", "B02"], seed=4)
    resnet = make_spec("r18", ["B08", "B04", "B03"], backbone="resnet18", out_indices=[1, 2, 3, 4])
    states = [make_weights(convnext, 0), make_weights(resnet, 1)]
    bands = ["B02", "B03", "B04", "B08"]
    encoder = EosFM([convnext, resnet], states, bands)
    assert encoder.out_channels == [40 + 64, 80 + 128, 160 + 256, 320 + 512]
    x = raw_input(bands, [convnext, resnet])
    out = encoder(x)
    assert [f.shape[1] for f in out] == encoder.out_channels
    ref = by_hand(resnet, states[1], x, bands)
    assert (out[2][:, 160:] - ref[2]).abs().max().item() <= 1e-5

    resnet_all = make_spec("r18_all", ["B08", "B04", "B03"], backbone="resnet18")
    with pytest.raises(ArtifactError, match="reductions"):
        EosFM([convnext, resnet_all], [states[0], make_weights(resnet_all, 2)], bands)


def test_constructor_checks_its_arguments(trio: Trio) -> None:
    specs, states = trio
    with pytest.raises(ArtifactError, match="repeat"):
        EosFM([specs[0], specs[0]], [states[0], states[0]], S2_ALL)
    with pytest.raises(ArtifactError, match="state dicts"):
        EosFM(specs, states[:1], S2_ALL)
    with pytest.raises(ValueError, match="fusion"):
        EosFM(specs[:1], states[:1], S2_ALL, fusion="mlp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="normalization_type"):
        EosFM(specs[:1], states[:1], S2_ALL, normalization_type="instance")  # type: ignore[arg-type]


def test_weights_that_do_not_match_the_backbone_are_refused(trio: Trio) -> None:
    _specs, states = trio
    lying = SpecialistSpec("liar", "convnextv2_atto", ["B04", "B03", "B02"], [0.0] * 3, [1.0] * 3)
    with pytest.raises(ArtifactError, match=r"shape mismatch.*stem_0\.weight"):
        EosFM([lying], [states[2]], S2_ALL)  # 13-band weights declared as 3 bands
    partial = {k: v for k, v in states[0].items() if not k.startswith("stages_3")}
    with pytest.raises(ArtifactError, match="missing keys"):
        EosFM([lying], [partial], S2_ALL)
    unknown = SpecialistSpec("x", "no_such_net", ["B04", "B03", "B02"], [0.0] * 3, [1.0] * 3)
    with pytest.raises(ArtifactError, match="Unknown model"):
        EosFM([unknown], [states[0]], S2_ALL)


def test_save_writes_a_pruned_ensemble(tmp_path: Path, trio: Trio) -> None:
    specs, states = trio
    encoder = EosFM(specs, states, S2_ALL)  # ben_s1 is inactive on optical input
    path = encoder.save(tmp_path / "pruned.safetensors")
    assert [s.name for s in read_metadata(path)] == ["eurosat_rgb", "eurosat_s2"]
    again = EosFM.from_file(path, input_bands=S2_ALL)
    x = raw_input(S2_ALL, specs)
    for a, b in zip(encoder(x), again(x), strict=True):
        assert torch.equal(a, b)


def test_importing_the_package_does_not_import_torch() -> None:
    code = (
        "import sys, eosfm_cli, eosfm_cli.models, eosfm_cli.models.spec, "
        "eosfm_cli.models.adaptation, eosfm_cli.models.ensemble_file; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "from eosfm_cli.models import EosFM; assert 'torch' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_feature_info_describes_the_pyramid_like_timm() -> None:
    from eosfm_cli.models.heads import feature_channels, feature_reductions

    specs = [
        _spec_for_feature_info("a", ["B04", "B03", "B02"]),
        _spec_for_feature_info("b", ["VV", "VH"]),
    ]
    states = [_random_weights(s) for s in specs]
    enc = EosFM(specs, states, ["B02", "B03", "B04", "VV", "VH"])
    info = enc.feature_info
    assert info.channels() == enc.out_channels == [80, 160, 320, 640]
    assert info.reduction() == enc.reductions == [4, 8, 16, 32]
    assert info.channels(-1) == 640 and info.reduction([0, 1]) == [4, 8]
    assert len(info) == 4 and info[0]["num_chs"] == 80 and info.module_name(0) == "level0"
    assert [d["reduction"] for d in info.get_dicts()] == [4, 8, 16, 32]
    assert feature_channels(enc) == enc.out_channels and feature_reductions(enc) == enc.reductions
    # A decoder built from feature_info alone, the way segmentation_models_pytorch builds one
    # from an encoder's out_channels and strides: it must fit the real features.
    decoder = _TinyUnetDecoder(info.channels(), info.reduction(), classes=3)
    x = torch.rand(2, 5, 64, 64) * 1000
    with torch.inference_mode():
        out = decoder(enc(x))
    assert out.shape == (2, 3, 64, 64)


def _spec_for_feature_info(name: str, bands: list[str]) -> SpecialistSpec:
    return SpecialistSpec(
        name=name,
        backbone="convnextv2_atto",
        bands=bands,
        mean=[0.0] * len(bands),
        std=[1.0] * len(bands),
    )


def _random_weights(spec: SpecialistSpec) -> dict[str, torch.Tensor]:
    import timm

    torch.manual_seed(0)
    model = timm.create_model(spec.backbone, features_only=True, in_chans=spec.in_chans)
    return model.state_dict()


class _TinyUnetDecoder(torch.nn.Module):
    """Top-down decoder configured only from per-level channels and strides."""

    def __init__(self, channels: list[int], reductions: list[int], classes: int) -> None:
        super().__init__()
        width = 32
        self.lateral = torch.nn.ModuleList(torch.nn.Conv2d(c, width, 1) for c in channels)
        self.out = torch.nn.Conv2d(width, classes, 3, padding=1)
        self.first_stride = reductions[0]

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        import torch.nn.functional as F

        y = self.lateral[-1](feats[-1])
        for lat, f in zip(self.lateral[-2::-1], feats[-2::-1], strict=True):
            y = F.interpolate(y, size=f.shape[-2:], mode="nearest") + lat(f)
        return F.interpolate(self.out(y), scale_factor=self.first_stride, mode="bilinear")
