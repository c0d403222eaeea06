"""Untrusted files: safe loading everywhere, malicious files refused, names kept inside.

The first test reads every module of the package as a syntax tree (not as text, so neither
comments nor formatting can fool it) and fails on any call that could unpickle code.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch
from reliability_helpers import SYNTHETIC, cli, link_copy, write_tiny_profile

from eosfm_cli.artifact_names import artifact_name
from eosfm_cli.errors import ProfileError
from eosfm_cli.profiles import load_profile

PACKAGE = Path(__file__).resolve().parents[1] / "eosfm_cli"


def _is_true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_loads(source: str, filename: str) -> list[str]:
    """Calls in ``source`` that may run code from a file, as ``file:line: why``."""
    tree = ast.parse(source, filename)
    torch_names = {"torch"}  # names bound to the torch module
    load_names: set[str] = set()  # names bound to torch.load itself
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            torch_names |= {a.asname or a.name for a in node.names if a.name == "torch"}
        elif isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization"):
            load_names |= {a.asname or a.name for a in node.names if a.name == "load"}
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        kw = {k.arg: k.value for k in node.keywords}
        where = f"{filename}:{node.lineno}"
        is_torch_load = (
            isinstance(func, ast.Attribute)
            and func.attr == "load"
            and isinstance(func.value, ast.Name)
            and func.value.id in torch_names
        ) or (isinstance(func, ast.Name) and func.id in load_names)
        if is_torch_load and not _is_true(kw.get("weights_only", ast.Constant(None))):
            problems.append(f"{where}: torch.load without weights_only=True")
        name = ast.unparse(func)
        if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "joblib.load"):
            problems.append(f"{where}: {name} runs code from the file")
        if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
            problems.append(f"{where}: {name}; use yaml.safe_load")
        if name.endswith("load_from_checkpoint"):
            problems.append(f"{where}: Lightning load_from_checkpoint unpickles hyper-parameters")
        is_numpy_load = name.endswith(("np.load", "numpy.load"))
        if is_numpy_load and _is_true(kw.get("allow_pickle", ast.Constant(None))):
            problems.append(f"{where}: numpy.load with allow_pickle=True")
        for key, value in kw.items():
            if key == "weights_only" and not _is_true(value):
                problems.append(f"{where}: weights_only is not True")
    return problems


def test_the_scanner_catches_violations() -> None:
    bad = (
        "import torch as T\nfrom torch import load as L\nimport pickle, yaml\n"
        "T.load('a')\nL('b', weights_only=False)\npickle.loads(b'')\nyaml.load('x')\n"
        "torch_load_ok = T.load('c', weights_only=True)\n"
    )
    found = unsafe_loads(bad, "bad.py")
    assert len(found) == 5, found
    assert all("bad.py:" in f for f in found)


def test_every_load_in_the_package_is_safe() -> None:
    problems = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    for path in files:
        problems += unsafe_loads(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert not problems, "\n".join(problems)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("target", ["last.ckpt", "best.ckpt"])
def test_malicious_checkpoint_in_the_workspace_is_refused(
    tmp_path: Path, prepared_workspace: Path, target: str
) -> None:
    """A planted checkpoint: --resume (last.ckpt) or export-ensemble (best.ckpt) must refuse."""
    ws = link_copy(prepared_workspace, tmp_path / "ws")
    marker = tmp_path / "PWNED"
    profile = write_tiny_profile(tmp_path / "tiny.yaml")
    folder = ws / "specialists" / "synthetic_rgb"
    (folder / target).unlink()
    torch.save({"state_dict": _Evil(marker), "epoch": 0}, folder / target)
    common = ["-p", str(profile), "-w", str(ws), "--quiet"]
    if target == "last.ckpt":
        args = ["train-specialist", "--dataset", "synthetic_rgb", "--root", str(SYNTHETIC)]
        args += [*common, "--resume"]
    else:
        args = ["export-ensemble", *common, "--set", "ensemble.name=evil"]
    out = cli(*args)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "cannot load checkpoint safely" in out.stderr and target in out.stderr
    assert not marker.exists(), "the checkpoint's code ran"
    assert not (ws / "ensembles" / "evil.safetensors").exists()


@pytest.mark.parametrize("bad", ["../../etc", "a/b", "..", ".hidden", "", " ", "x\\y"])
def test_artifact_names_cannot_leave_their_folder(bad: str) -> None:
    with pytest.raises(ProfileError, match="not a valid artifact name"):
        artifact_name(bad, "--name")


def test_profile_ensemble_name_cannot_escape(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("ensemble:\n  name: ../../../tmp/owned\n")
    with pytest.raises(ProfileError, match=r"ensemble\.name"):
        load_profile(path)
    assert artifact_name("eosfm-k2_v1.0", "--name") == "eosfm-k2_v1.0"
