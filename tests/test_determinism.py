"""Same seed, same data, same CPU: the same metrics and the same weights.

The session's prepared workspace was built with the settings of :mod:`reliability_helpers`;
each test runs one stage again with the same settings into a fresh workspace and compares.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from reliability_helpers import DEFAULT, HEAD_RUN, SYNTHETIC, tiny_sets
from safetensors.torch import load_file

from eosfm_cli.context import resolve
from eosfm_cli.models.checkpoints import load_checkpoint_file
from eosfm_cli.stages.fit_head import fit_head
from eosfm_cli.stages.train_specialist import train_specialist


def test_train_specialist_is_deterministic(tmp_path: Path, prepared_workspace: Path) -> None:
    ctx = resolve(
        DEFAULT, tiny_sets(), dataset="synthetic_rgb", root=SYNTHETIC, workspace=tmp_path / "ws"
    )
    train_specialist(ctx)
    again = tmp_path / "ws" / "specialists" / "synthetic_rgb"
    first = prepared_workspace / "specialists" / "synthetic_rgb"
    assert json.loads((again / "metrics.json").read_text()) == json.loads(
        (first / "metrics.json").read_text()
    )
    a = load_checkpoint_file(again / "last.ckpt")["state_dict"]
    b = load_checkpoint_file(first / "last.ckpt")["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fit_head_is_deterministic(tmp_path: Path, prepared_workspace: Path) -> None:
    ctx = resolve(DEFAULT, tiny_sets(), root=SYNTHETIC, workspace=tmp_path / "ws")
    ensemble = prepared_workspace / "ensembles" / "eosfm.safetensors"
    fit_head(ctx, ensemble=ensemble)
    again = tmp_path / "ws" / "heads" / HEAD_RUN
    first = prepared_workspace / "heads" / HEAD_RUN
    assert json.loads((again / "metrics.json").read_text()) == json.loads(
        (first / "metrics.json").read_text()
    )
    a, b = load_file(again / "head.safetensors"), load_file(first / "head.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
