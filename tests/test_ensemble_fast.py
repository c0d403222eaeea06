"""The fast frozen forward of EosFM: shared graphs, bf16, compilation and its fallback."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
import torch
from torch import nn

import eosfm_cli.models.frozen_forward as frozen_forward_module
from eosfm_cli.bands import BAND_SETS
from eosfm_cli.models import EosFM
from eosfm_cli.models.frozen_forward import FrozenForward
from eosfm_cli.models.spec import SpecialistSpec
from eosfm_cli.models.specialist import SpecialistInput
from tests.test_ensemble import INPUT_BANDS, make_spec, make_weights, raw_input

S2_ALL = list(BAND_SETS["S2_ALL"])
Mixed = tuple[list[SpecialistSpec], list[dict[str, torch.Tensor]]]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    """Each compile test starts from empty dynamo caches and leaves none behind."""
    torch._dynamo.reset()
    saved = frozen_forward_module._compiled
    frozen_forward_module._compiled = None
    yield
    frozen_forward_module._compiled = saved
    torch._dynamo.reset()


@pytest.fixture(scope="module")
def mixed() -> Mixed:
    """Same architecture, mixed widths: 3-band RGB, SAR composite, 13-band S2, and a fill."""
    specs = [
        make_spec("rgb", ["B04", "B03", "B02"], backbone="test_convnext", seed=1),
        make_spec("s1", ["VV", "VH", "VH"], backbone="test_convnext", seed=2),
        make_spec("s2", S2_ALL, backbone="test_convnext", seed=3),
        # DEM is absent from the input: filled with its mean (0 after normalisation).
        make_spec("rgbd", ["B04", "B03", "B02", "DEM"], backbone="test_convnext", seed=4),
    ]
    return specs, [make_weights(s, i) for i, s in enumerate(specs)]


def fast_features(encoder: EosFM, x: torch.Tensor) -> list[list[torch.Tensor]]:
    """The fp32 fast path run by hand (the ensemble uses it only with compile or bf16)."""
    fast = FrozenForward(
        list(encoder.specialists), [m for m in encoder.inputs if isinstance(m, SpecialistInput)]
    )
    with torch.inference_mode():
        return fast(encoder._pad(x))


def max_abs(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a, b, strict=True))


def max_rel(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(((p - q).abs().max() / q.abs().max()).item() for p, q in zip(a, b, strict=True))


def test_shared_graph_pads_narrow_stems_and_matches_eager(mixed: Mixed) -> None:
    specs, states = mixed
    encoder = EosFM(specs, states, INPUT_BANDS, min_coverage=0.5)
    assert encoder.active_names == ["rgb", "s1", "s2", "rgbd"]
    x = raw_input(INPUT_BANDS, specs)
    fast = FrozenForward(list(encoder.specialists), list(encoder.inputs))  # type: ignore[arg-type]
    assert {m.group for m in fast.members} == {0}
    assert {m.width for m in fast.members} == {13}
    assert fast.members[2].padded == ()
    assert fast.members[0].padded == ("stem_0.weight",)
    with torch.inference_mode():
        got = fast(x)
    want = encoder.specialist_features(x)
    for g, w in zip(got, want, strict=True):
        assert max_abs(g, w) <= 1e-5


def test_cross_scale_substitutes_keep_their_unit_rescale() -> None:
    """An 8-bit aerial RGB specialist on S2 reflectance: the rescale folded into its stats."""
    aerial = make_spec("aerial", ["R", "G", "B"], backbone="test_convnext", seed=5)
    aerial.mean = [110.0, 100.0, 90.0]
    aerial.std = [40.0, 35.0, 30.0]
    s2 = make_spec("s2", S2_ALL, backbone="test_convnext", seed=6)
    specs = [aerial, s2]
    states = [make_weights(s, i) for i, s in enumerate(specs)]
    encoder = EosFM(specs, states, S2_ALL)
    assert "unit rescale" in encoder.explain()
    x = raw_input(S2_ALL, [s2])
    want = encoder.specialist_features(x)
    for got, ref in zip(fast_features(encoder, x), want, strict=True):
        assert max_abs(got, ref) <= 1e-5


def test_different_architectures_get_their_own_graphs() -> None:
    convnext = make_spec("atto", ["B04", "B03", "B02"], seed=4)
    resnet = make_spec("r18", ["B08", "B04", "B03"], backbone="resnet18", out_indices=[1, 2, 3, 4])
    states = [make_weights(convnext, 0), make_weights(resnet, 1)]
    bands = ["B02", "B03", "B04", "B08"]
    encoder = EosFM([convnext, resnet], states, bands, precision="bf16")
    text = encoder.explain()
    assert "frozen forward: eager, bf16" in text
    assert "graph 0: atto (3 input channels)" in text
    assert "graph 1: r18 (3 input channels)" in text
    x = raw_input(bands, [convnext, resnet])
    assert max_rel(encoder(x), EosFM([convnext, resnet], states, bands)(x)) < 0.05


def test_fp32_fast_path_crops_non_divisible_inputs(mixed: Mixed) -> None:
    specs, states = mixed
    encoder = EosFM(specs[:3], states[:3], INPUT_BANDS)
    x = raw_input(INPUT_BANDS, specs, size=(70, 50))
    want = encoder.specialist_features(x)
    padded = fast_features(encoder, x)
    for got, ref in zip(padded, want, strict=True):
        cropped = [g[..., : r.shape[-2], : r.shape[-1]] for g, r in zip(got, ref, strict=True)]
        assert max_abs(cropped, ref) <= 1e-5


def test_bf16_features_are_close_and_keep_the_input_dtype(mixed: Mixed) -> None:
    specs, states = mixed
    eager = EosFM(specs, states, INPUT_BANDS, min_coverage=0.5)
    bf16 = EosFM(specs, states, INPUT_BANDS, min_coverage=0.5, precision="bf16")
    x = raw_input(INPUT_BANDS, specs, size=(70, 50))
    want, got = eager(x), bf16(x)
    assert [f.shape for f in got] == [f.shape for f in want]
    assert all(f.dtype == torch.float32 for f in got)
    assert max_rel(got, want) < 0.03
    assert "precision='bf16'" in repr(bf16)
    # Frozen features still feed a trainable head.
    head = nn.Conv2d(got[-1].shape[1], 2, 1)
    head(got[-1]).mean().backward()
    assert head.weight.grad is not None


def test_cached_weights_follow_load_state_dict(mixed: Mixed) -> None:
    specs, states = mixed
    encoder = EosFM(specs[:1], states[:1], INPUT_BANDS, precision="bf16")
    x = raw_input(INPUT_BANDS, specs)
    before = encoder(x)
    encoder.specialists[0].load_state_dict(states[1])  # rgb gets s1's weights (same shapes)
    after = encoder(x)
    want = EosFM(specs[:1], [states[1]], INPUT_BANDS)(x)
    assert max_rel(after, want) < 0.03
    assert max_abs(after, before) > 1e-2


def test_trainable_ensembles_ignore_the_fast_path_with_a_warning(mixed: Mixed) -> None:
    specs, states = mixed
    with pytest.warns(UserWarning, match="frozen specialists only"):
        encoder = EosFM(specs[:2], states[:2], INPUT_BANDS, freeze=False, compile=True)
    with pytest.warns(UserWarning, match="frozen specialists only"):
        EosFM(specs[:2], states[:2], INPUT_BANDS, freeze=False, precision="bf16")
    assert not encoder.compiled
    encoder.train()
    x = raw_input(INPUT_BANDS, specs, size=(32, 32))
    out = encoder(x)
    sum(f.mean() for f in out).backward()
    assert all(p.grad is not None for p in encoder.specialists.parameters())
    reference = EosFM(specs[:2], states[:2], INPUT_BANDS, freeze=False).train()
    assert max_abs(out, reference(x)) <= 1e-6


def test_bad_precision_is_refused(mixed: Mixed) -> None:
    specs, states = mixed
    with pytest.raises(ValueError, match="precision"):
        EosFM(specs[:1], states[:1], INPUT_BANDS, precision="fp16")  # type: ignore[arg-type]


def test_compile_failure_falls_back_to_eager_with_one_warning(
    mixed: Mixed, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs, states = mixed
    calls = []

    def broken(*args: object) -> list[torch.Tensor]:
        calls.append(1)
        raise RuntimeError("InductorError: no working C++ compiler\nlong details")

    monkeypatch.setattr(frozen_forward_module, "_compiled_forward", lambda: broken)
    encoder = EosFM(specs, states, INPUT_BANDS, min_coverage=0.5, compile=True)
    assert encoder.compiled
    x = raw_input(INPUT_BANDS, specs)
    with pytest.warns(RuntimeWarning, match="torch.compile failed") as record:
        out = encoder(x)
    assert len(record) == 1 and "long details" not in str(record[0].message)
    assert calls == [1] and not encoder.compiled
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = encoder(x)
    want = EosFM(specs, states, INPUT_BANDS, min_coverage=0.5)(x)
    assert max_abs(out, want) <= 1e-5 and max_abs(again, want) <= 1e-5


def test_one_traced_graph_serves_every_specialist_and_partial_batches(
    mixed: Mixed, monkeypatch: pytest.MonkeyPatch, fresh_dynamo: None
) -> None:
    """Dynamo with the eager backend: the tracing and guards of the real path, no codegen."""
    specs, states = mixed
    traced = torch.compile(frozen_forward_module._frozen_specialist_forward, backend="eager")
    monkeypatch.setattr(frozen_forward_module, "_compiled_forward", lambda: traced)
    torch._dynamo.utils.counters.clear()
    encoder = EosFM(specs, states, INPUT_BANDS, min_coverage=0.5).compile_specialists()
    x = raw_input(INPUT_BANDS, specs)
    x = torch.cat([x, x.flip(0)])  # batch 4
    want = EosFM(specs, states, INPUT_BANDS, min_coverage=0.5)(x)
    assert max_abs(encoder(x), want) <= 1e-5
    # A smaller batch is padded up to the traced one, and a second ensemble of the same
    # architecture reuses the graph too.
    other = EosFM(specs[1:3], states[1:3], INPUT_BANDS, compile=True)
    for got, ref in zip(encoder(x[:3]), want, strict=True):
        assert got.shape[0] == 3
        assert (got - ref[:3]).abs().max().item() <= 1e-5
    other(x)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


@pytest.mark.slow
def test_inductor_compiled_features_match_eager(mixed: Mixed, fresh_dynamo: None) -> None:
    """The real compiler (about 30 s per precision on a CPU)."""
    specs, states = mixed
    x = raw_input(INPUT_BANDS, specs)
    want = EosFM(specs, states, INPUT_BANDS, min_coverage=0.5)(x)
    fp32 = EosFM(specs, states, INPUT_BANDS, min_coverage=0.5, compile=True)
    assert max_abs(fp32(x), want) <= 1e-4
    assert max_abs(fp32(x[:1]), [f[:1] for f in want]) <= 1e-4
    bf16 = EosFM(specs, states, INPUT_BANDS, min_coverage=0.5, compile=True, precision="bf16")
    assert max_rel(bf16(x), want) < 0.03
    assert fp32.compiled and bf16.compiled
