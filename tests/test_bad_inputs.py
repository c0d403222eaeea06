"""Bad inputs through the real CLI: exit 2, one actionable line, no traceback, no trace.

Each case prepares its own workspace (a hard-linked copy of the session's prepared workspace,
or an empty folder) and its own bad file, then runs ``python -m eosfm_cli ...`` in a
subprocess. Every case must give exit code 2, exactly one stderr line (``error: ...``) that
names the file or key and says what to do (the `` — `` hint), no traceback, and a workspace
whose files and folders are unchanged, manifest.json included.

Cases are set up one by one, then run two at a time (each Python start with torch costs a few
seconds); the parametrised tests assert on the recorded outcomes.

The full disk is simulated with ``RLIMIT_FSIZE`` (``ulimit -f``) set in the child process:
unprivileged, and Python ignores SIGXFSZ, so a write past the limit fails with EFBIG like a
write to a full disk fails with ENOSPC. The stages check the space an ensemble needs before
they write, so the limit is met before anything is touched.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import resource
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from conftest import REPO
from reliability_helpers import (
    HEAD_RUN,
    SYNTHETIC,
    cli,
    copy_synthetic,
    diff,
    error_lines,
    link_copy,
    snapshot,
    write_tiny_profile,
)

MARKER = "PWNED"


@dataclass
class Run:
    """One prepared case: CLI arguments, the workspace to watch, the words the error needs."""

    args: list[str]
    ws: Path
    needles: list[str]
    env: dict[str, str] = field(default_factory=dict)
    limit_fsize: int | None = None


@dataclass
class Env:
    """What a case's set-up gets: its own folder, the prepared workspace, a tiny profile."""

    tmp: Path
    prepared: Path
    profile: Path

    def ws(self) -> Path:
        """A private hard-linked copy of the prepared workspace."""
        return link_copy(self.prepared, self.tmp / "ws")

    def empty_ws(self) -> Path:
        """A workspace folder with nothing in it."""
        (self.tmp / "ws").mkdir()
        return self.tmp / "ws"

    def common(self, ws: Path, profile: Path | None = None) -> list[str]:
        """``-p PROFILE -w WS --quiet``."""
        return ["-p", str(profile or self.profile), "-w", str(ws), "--quiet"]

    def train(self, ws: Path, *extra: str, root: Path | None = None) -> list[str]:
        """A train-specialist command for a specialist that the workspace lacks."""
        return [
            "train-specialist",
            "--dataset",
            "synthetic_s2",
            "--root",
            str(root or SYNTHETIC),
            *self.common(ws),
            *extra,
        ]

    def fit(self, ws: Path, *extra: str) -> list[str]:
        """A fit-head command into a new head run."""
        return ["fit-head", "--run", "other", *self.common(ws), *extra]

    def yaml(self, text: str) -> Path:
        """A profile file with this text."""
        path = self.tmp / "bad.yaml"
        path.write_text(text)
        return path


Setup = Callable[[Env], Run]
CASES: dict[str, Setup] = {}


def case(name: str) -> Callable[[Setup], Setup]:
    """Register a bad-input case."""

    def register(fn: Setup) -> Setup:
        CASES[name] = fn
        return fn

    return register


# ------------------------------------------------------------------------------- profiles


@case("profile-unknown-key")
def _(e: Env) -> Run:
    p = e.yaml(f"include: {e.profile}\ntrainer:\n  max_epoch: 3\n")
    ws = e.ws()
    return Run([*e.train(ws), "-p", str(p)], ws, ["trainer.max_epoch", "max_epochs", str(p)])


@case("profile-wrong-type")
def _(e: Env) -> Run:
    p = e.yaml(f"include: {e.profile}\ntrainer:\n  batch_size: lots\n")
    ws = e.ws()
    return Run([*e.train(ws), "-p", str(p)], ws, ["trainer.batch_size", "lots"])


@case("profile-missing-file")
def _(e: Env) -> Run:
    ws = e.ws()
    missing = e.tmp / "nowhere.yaml"
    return Run([*e.train(ws), "-p", str(missing)], ws, [str(missing), "not found"])


@case("profile-yaml-syntax")
def _(e: Env) -> Run:
    p = e.yaml("trainer:\n  max_epochs: [1, 2\nseed: 3\n")
    ws = e.ws()
    return Run([*e.train(ws), "-p", str(p)], ws, [str(p), "YAML syntax error"])


@case("profile-bad-date-value")
def _(e: Env) -> Run:
    # PyYAML builds a datetime from this and raises ValueError (month 13).
    p = e.yaml(f"include: {e.profile}\nseed: 2024-13-01\n")
    ws = e.ws()
    return Run([*e.train(ws), "-p", str(p)], ws, [str(p), "YAML"])


@case("profile-not-a-mapping")
def _(e: Env) -> Run:
    p = e.yaml("- workspace\n- seed\n")
    ws = e.ws()
    return Run([*e.train(ws), "-p", str(p)], ws, [str(p), "mapping"])


@case("profile-include-cycle")
def _(e: Env) -> Run:
    p = e.yaml("include: bad.yaml\n")
    ws = e.ws()
    return Run([*e.train(ws), "-p", str(p)], ws, ["include cycle"])


@case("profile-unknown-dataset")
def _(e: Env) -> Run:
    ws = e.ws()
    args = e.train(ws)
    args[args.index("synthetic_s2")] = "synthetic_s9"
    return Run(args, ws, ["synthetic_s9", "--dataset"])


@case("profile-unknown-backbone")
def _(e: Env) -> Run:
    ws = e.ws()
    return Run(
        e.train(ws, "--set", "model.backbone=convnextv2_atom"),
        ws,
        ["model.backbone", "convnextv2_atom", "convnextv2_atto"],
    )


@case("profile-impossible-k")
def _(e: Env) -> Run:
    ws = e.ws()
    return Run(e.fit(ws, "--set", "ensemble.max_encoders=5"), ws, ["ensemble.max_encoders", "K=5"])


@case("profile-zero-epochs")
def _(e: Env) -> Run:
    ws = e.ws()
    return Run(e.train(ws, "--set", "trainer.max_epochs=0"), ws, ["trainer.max_epochs"])


@case("profile-task-mismatch")
def _(e: Env) -> Run:
    ws = e.ws()
    return Run(e.train(ws, "--set", "dataset.task=segmentation"), ws, ["dataset.task"])


@case("profile-unknown-band")
def _(e: Env) -> Run:
    ws = e.ws()
    return Run(e.train(ws, "--set", "dataset.bands=[B99]"), ws, ["dataset.bands", "B99"])


@case("profile-set-without-value")
def _(e: Env) -> Run:
    ws = e.ws()
    return Run(e.train(ws, "--set", "trainer.max_epochs"), ws, ["--set", "KEY=VALUE"])


@case("profile-ensemble-name-traversal")
def _(e: Env) -> Run:
    ws = e.ws()
    return Run(
        ["export-ensemble", *e.common(ws), "--set", "ensemble.name=../../etc/eosfm"],
        ws,
        ["ensemble.name", "not a valid artifact name"],
    )


@case("specialist-name-traversal")
def _(e: Env) -> Run:
    ws = e.ws()
    return Run(e.train(ws, "--name", "../../outside"), ws, ["--name", "not a valid artifact name"])


@case("head-run-traversal")
def _(e: Env) -> Run:
    ws = e.ws()
    args = e.fit(ws)
    args[args.index("other")] = "../escaped"
    return Run(args, ws, ["--run", "not a valid artifact name"])


# ----------------------------------------------------------------------------------- data


def _data(e: Env, scene_files: dict[str, Callable[[Path], None]] | None = None) -> Path:
    root = copy_synthetic(e.tmp / "data")
    for rel, mutate in (scene_files or {}).items():
        mutate(root / "scenes" / rel)
    return root


def _first_train_scene() -> str:
    for line in (SYNTHETIC / "scenes.csv").read_text().splitlines()[1:]:
        scene, split = line.split(",")[:2]
        if split == "train":
            return scene
    raise AssertionError("no training scene")


SCENE = _first_train_scene()


def _rewrite(path: Path, fn: Callable[[np.ndarray], np.ndarray], **profile: Any) -> None:
    with rasterio.open(path) as src:
        data, meta = src.read(), src.profile
    data = fn(data)
    meta.update(count=data.shape[0], height=data.shape[1], width=data.shape[2], dtype=data.dtype)
    meta.update(profile)
    with rasterio.open(path, "w", **meta) as dst:
        dst.write(data)


@case("data-missing-root")
def _(e: Env) -> Run:
    ws = e.ws()
    return Run(e.train(ws, root=e.tmp / "no_data"), ws, [str(e.tmp / "no_data"), "--root"])


@case("data-empty-split")
def _(e: Env) -> Run:
    ws = e.ws()
    rows = [r.split(",") for r in (SYNTHETIC / "scenes.csv").read_text().splitlines()[1:]]
    root = copy_synthetic(
        e.tmp / "data", [(r[0], "train" if r[1] == "test" else r[1]) for r in rows]
    )
    return Run(e.train(ws, root=root), ws, ["test split is empty", str(root)])


@case("data-corrupt-geotiff")
def _(e: Env) -> Run:
    ws = e.ws()
    root = _data(e, {f"{SCENE}/s2.tif": lambda p: p.write_bytes(b"II*\x00" + os.urandom(600))})
    return Run(e.train(ws, root=root), ws, [f"{SCENE}/s2.tif"])


@case("data-truncated-geotiff")
def _(e: Env) -> Run:
    ws = e.ws()

    def truncate(p: Path) -> None:
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])

    root = _data(e, {f"{SCENE}/s2.tif": truncate})
    return Run(e.train(ws, root=root), ws, [f"{SCENE}/s2.tif"])


@case("data-wrong-band-count")
def _(e: Env) -> Run:
    ws = e.ws()
    root = _data(e, {f"{SCENE}/s2.tif": lambda p: _rewrite(p, lambda a: a[:4])})
    return Run(e.train(ws, root=root), ws, [f"{SCENE}/s2.tif"])


@case("data-nan-image")
def _(e: Env) -> Run:
    ws = e.ws()
    root = _data(e, {f"{SCENE}/s1.tif": lambda p: _rewrite(p, lambda a: np.full_like(a, np.nan))})
    args = e.train(ws, "--name", "s1_nan", root=root)
    args[args.index("synthetic_s2")] = "synthetic_s1"
    return Run(args, ws, [SCENE, "NaN"])


@case("data-nodata-only-image")
def _(e: Env) -> Run:
    ws = e.ws()
    root = _data(
        e, {f"{SCENE}/s2.tif": lambda p: _rewrite(p, lambda a: np.zeros_like(a), nodata=0)}
    )
    return Run(e.train(ws, root=root), ws, [SCENE, "nodata"])


@case("data-mask-wrong-size")
def _(e: Env) -> Run:
    ws = e.ws()
    root = _data(e, {f"{SCENE}/landcover.tif": lambda p: _rewrite(p, lambda a: a[:, :16, :16])})
    args = e.train(ws, root=root)
    args[args.index("synthetic_s2")] = "synthetic_seg"
    return Run(args, ws, [SCENE, "mask"])


@case("data-label-out-of-range")
def _(e: Env) -> Run:
    ws = e.ws()
    root = copy_synthetic(e.tmp / "data")
    lines = (root / "scenes.csv").read_text().splitlines()
    scene, split, _, labels = lines[1].split(",")
    lines[1] = f"{scene},{split},9,{labels}"
    (root / "scenes.csv").write_text("\n".join(lines) + "\n")
    return Run(e.train(ws, root=root), ws, [scene, "label 9"])


@case("data-missing-metadata")
def _(e: Env) -> Run:
    ws = e.ws()
    root = copy_synthetic(e.tmp / "data")
    (root / "synthetic.json").unlink()
    return Run(e.train(ws, root=root), ws, ["synthetic.json", "--root"])


# ------------------------------------------------------------------------ ensemble files


def _ensemble_file(e: Env, name: str, data: bytes) -> Path:
    path = e.tmp / name
    path.write_bytes(data)
    return path


@case("ensemble-truncated")
def _(e: Env) -> Run:
    ws = e.ws()
    full = (e.prepared / "ensembles" / "eosfm.safetensors").read_bytes()
    bad = _ensemble_file(e, "trunc.safetensors", full[: len(full) // 2])
    return Run(e.fit(ws, "--ensemble", str(bad)), ws, [str(bad)])


@case("ensemble-header-only")
def _(e: Env) -> Run:
    ws = e.ws()
    full = (e.prepared / "ensembles" / "eosfm.safetensors").read_bytes()
    bad = _ensemble_file(e, "head.safetensors", full[:100])
    return Run(
        ["export-ensemble", *e.common(ws), "--inspect", str(bad)], ws, [str(bad), "truncated"]
    )


@case("ensemble-wrong-format")
def _(e: Env) -> Run:
    ws = e.ws()
    bad = _ensemble_file(e, "notes.safetensors", b"these are my notes, not weights\n" * 10)
    return Run(
        ["select-encoders", "--k", "1", *e.common(ws), "--ensemble", str(bad)],
        ws,
        [str(bad), "not an ensemble file"],
    )


@case("ensemble-empty-file")
def _(e: Env) -> Run:
    ws = e.ws()
    bad = _ensemble_file(e, "empty.pth", b"")
    return Run(["export-ensemble", *e.common(ws), "--inspect", str(bad)], ws, [str(bad), "empty"])


@case("ensemble-reference-in-chans-mismatch")
def _(e: Env) -> Run:
    import torch

    from eosfm_cli.models.native_file import load_ensemble

    ws = e.ws()
    spec, state = load_ensemble(e.prepared / "ensembles" / "eosfm.safetensors")[0]
    assert spec.in_chans == 3
    bad = e.tmp / "reference.pth"
    torch.save([(13, state, {"backbone": "timm_convnextv2_atto"})], bad)
    return Run(e.fit(ws, "--ensemble", str(bad)), ws, ["in_chans=13", "stem_0.weight"])


@case("ensemble-malicious-pickle")
def _(e: Env) -> Run:
    ws = e.ws()
    bad = e.tmp / "evil.pth"
    bad.write_bytes(_evil_pickle(e.tmp / MARKER))
    return Run(e.fit(ws, "--ensemble", str(bad)), ws, [str(bad), "refused"])


@case("ensemble-no-usable-bands")
def _(e: Env) -> Run:
    ws = e.ws()
    # B10 (cirrus, 1375 nm) is far from R, G and B, and the S1 specialist needs SAR input.
    return Run(e.fit(ws, "--set", "downstream.bands=[B10]"), ws, ["no specialist can run", "B10"])


@case("checkpoint-malicious-in-encoders-folder")
def _(e: Env) -> Run:
    import torch

    ws = e.ws()
    run = e.tmp / "runs" / "evil_run" / "version_0" / "checkpoints"
    run.mkdir(parents=True)
    torch.save(_Evil(str(e.tmp / MARKER)), run / "best.ckpt")
    return Run(
        ["export-ensemble", *e.common(ws), "--encoders-folder", str(e.tmp / "runs")],
        ws,
        ["best.ckpt", "cannot load checkpoint safely"],
    )


class _Evil:
    """Unpickling this runs ``touch MARKER``: proof that a loader executed code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps([_Evil(str(marker))], protocol=2)


# ------------------------------------------------------------------------------ workspace


@case("workspace-no-specialists")
def _(e: Env) -> Run:
    ws = e.empty_ws()
    return Run(["export-ensemble", *e.common(ws)], ws, ["no specialists to export", "specialists"])


@case("workspace-no-head-runs")
def _(e: Env) -> Run:
    ws = e.empty_ws()
    return Run(["evaluate", *e.common(ws)], ws, ["no head runs", "fit-head"])


@case("workspace-resume-without-checkpoint")
def _(e: Env) -> Run:
    ws = e.ws()
    return Run(e.train(ws, "--resume"), ws, ["nothing to resume", "synthetic_s2"])


@case("workspace-head-from-another-ensemble")
def _(e: Env) -> Run:
    from eosfm_cli.models.native_file import load_ensemble, save_ensemble

    ws = e.ws()
    ens = ws / "ensembles" / "eosfm.safetensors"
    head_json = ws / "heads" / HEAD_RUN / "head.json"
    meta = json.loads(head_json.read_text())
    meta["ensemble"] = str(ens)  # as if the workspace had been built here
    head_json.unlink()  # hard link: replace, never write through
    head_json.write_text(json.dumps(meta))
    # The ensemble was re-exported after the head was fitted (other specialists).
    entries = load_ensemble(ens)[::-1]
    ens.unlink()
    save_ensemble(ens, [x[0] for x in entries], [x[1] for x in entries])
    return Run(["evaluate", *e.common(ws)], ws, ["another ensemble", "head.json"])


@case("predict-unnamed-bands")
def _(e: Env) -> Run:
    ws = e.ws()
    meta = json.loads((ws / "heads" / HEAD_RUN / "head.json").read_text())
    n = len(meta["config"]["input_bands"])
    raster = e.tmp / "unnamed.tif"
    with rasterio.open(
        raster, "w", driver="GTiff", count=n, height=32, width=32, dtype="uint16"
    ) as dst:
        dst.write(np.full((n, 32, 32), 1000, np.uint16))
        dst.descriptions = tuple(f"band {i + 1}" for i in range(n))
    args = ["predict", str(raster), "--run", HEAD_RUN, *e.common(ws)]
    return Run(args, ws, ["unnamed.tif", "never read by position", "--input-bands"])


@case("workspace-read-only")
def _(e: Env) -> Run:
    ws = e.ws()
    for path in [ws, *ws.rglob("*")]:
        if path.is_dir():
            path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return Run(
        ["export-ensemble", *e.common(ws), "--set", "ensemble.name=again"],
        ws,
        [str(ws), "not writable"],
    )


@case("workspace-full-disk")
def _(e: Env) -> Run:
    ws = e.ws()
    return Run(
        ["export-ensemble", *e.common(ws), "--set", "ensemble.name=again"],
        ws,
        ["again.safetensors", "file size limit"],
        limit_fsize=256 * 1024,
    )


@case("workspace-locked")
def _(e: Env) -> Run:
    ws = e.ws()
    holder = {"pid": os.getpid(), "host": os.uname().nodename, "stage": "fit-head"}
    (ws / ".lock").write_text(json.dumps(holder))
    return Run(
        ["export-ensemble", *e.common(ws), "--set", "ensemble.name=again"],
        ws,
        [f"pid {os.getpid()}", "--wait"],
    )


@case("workspace-corrupt-manifest")
def _(e: Env) -> Run:
    ws = e.ws()
    (ws / "manifest.json").unlink()
    (ws / "manifest.json").write_text('{"version": 1, "runs": [')
    return Run(
        ["export-ensemble", *e.common(ws), "--set", "ensemble.name=again"],
        ws,
        ["manifest.json", "not valid JSON"],
    )


# ------------------------------------------------------------------------------- running


@dataclass
class Outcome:
    """What a case did."""

    run: Run
    proc: subprocess.CompletedProcess[str]
    changes: list[str]
    seconds: float


def _limit(nbytes: int | None) -> Callable[[], None] | None:
    if nbytes is None:
        return None

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return apply


def _execute(run: Run) -> Outcome:
    before = snapshot(run.ws)
    start = time.perf_counter()
    proc = cli(*run.args, env=run.env, preexec_fn=_limit(run.limit_fsize))
    seconds = time.perf_counter() - start
    return Outcome(run, proc, diff(before, snapshot(run.ws)), seconds)


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest,
    prepared_workspace: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Outcome]:
    """Set up every selected case, run them two at a time, restore permissions."""
    wanted = [
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "callspec", None) is not None
        and item.module is request.module
        and "name" in item.callspec.params
    ]
    base = tmp_path_factory.mktemp("bad_inputs")
    profile = write_tiny_profile(base / "tiny.yaml")
    runs: dict[str, Run] = {}
    for name in wanted:
        tmp = base / name
        tmp.mkdir()
        runs[name] = CASES[name](Env(tmp, prepared_workspace, profile))
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(runs, pool.map(_execute, runs.values()), strict=True))
    for run in runs.values():
        for path in [run.ws, *run.ws.rglob("*")]:
            if path.is_dir():
                path.chmod(stat.S_IRWXU)
    (base / "timings.json").write_text(
        json.dumps({k: round(v.seconds, 2) for k, v in done.items()}, indent=1)
    )
    return done


def test_docs_list_every_case() -> None:
    """docs/reliability.md lists exactly the registered cases, and its counts are theirs."""
    text = (REPO / "docs" / "reliability.md").read_text()
    table = text.split("### Bad-input cases", 1)[1].split("| area | n | cases |", 1)[1]
    rows = table.split("\n\n", 1)[0].strip().splitlines()[1:]  # below the |---| line
    listed = [name for ln in rows for name in re.findall(r"`([a-z0-9-]+)`", ln)]
    assert sorted(listed) == sorted(CASES), set(listed) ^ set(CASES)
    assert len(listed) == len(set(listed))
    for ln in rows:  # each row's count column counts its own names
        count = int(ln.split("|")[2])
        assert count == len(re.findall(r"`[a-z0-9-]+`", ln)), ln
    assert f"the {len(CASES)} bad inputs of the [table below]" in text
    readme = (REPO / "README.md").read_text()
    assert f"a {len(CASES)}-case bad-input table" in readme


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, outcomes: dict[str, Outcome]) -> None:
    if name == "workspace-read-only" and os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    out = outcomes[name]
    proc = out.proc
    lines = error_lines(proc.stderr)
    context = (
        f"{name}: rc={proc.returncode}\nstderr:\n{proc.stderr}\nstdout:\n{proc.stdout[-2000:]}"
    )
    assert proc.returncode == 2, context
    assert "Traceback" not in proc.stderr + proc.stdout, context
    assert len(lines) == 1 and lines[0].startswith("error: "), context
    assert " — " in lines[0], f"no hint on what to do: {lines[0]}"
    for needle in out.run.needles:
        assert needle in lines[0], f"{needle!r} missing from: {lines[0]}"
    assert not out.changes, f"{name} touched the workspace: {out.changes}"
    assert not (out.run.ws.parent / MARKER).exists(), "a loader executed code from a file"


def test_no_leftovers_in_the_prepared_workspace(prepared_workspace: Path) -> None:
    assert not list(prepared_workspace.rglob(".*.tmp*"))
    assert not (prepared_workspace / ".lock").exists()
    shutil.disk_usage(prepared_workspace)  # still there
