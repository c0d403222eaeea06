"""bench/run.py: failures fail the run, stale figures say so, every figure names its commit.

No real benchmark runs here: the modules are written into a temporary git repository.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
MACHINE = {
    "cpu_model": "Test CPU",
    "cores": 2,
    "threads": 2,
    "flags": ["avx2"],
    "torch": "0.0",
    "cuda": None,
}


def _harness() -> Any:
    spec = importlib.util.spec_from_file_location("bench_harness", REPO / "bench" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


GOOD = """
from __future__ import annotations

from dataclasses import dataclass

MEASURES = ["code.py"]


@dataclass
class Speed:  # a dataclass needs its module registered while it loads
    value: float


def run():
    return {"good_speed": {"value": Speed(2.0).value, "unit": "x", "met": True}}
"""

FAILING = """
def run():
    raise RuntimeError("the benchmark broke")
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one measured code file and a bench folder."""
    root = tmp_path / "repo"
    (root / "bench").mkdir(parents=True)
    (root / "code.py").write_text("x = 1\n")
    (root / "bench" / "bench_good.py").write_text(GOOD)
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    return root


def _run(harness: Any, repo: Path, names: list[str]) -> tuple[int, dict[str, Any], str]:
    bench = repo / "bench"
    rc = harness.run_benchmarks(
        [bench / f"{n}.py" for n in names],
        results_path=bench / "results.json",
        markdown_path=bench / "RESULTS.md",
        repo=repo,
        machine=lambda: dict(MACHINE),
    )
    results = json.loads((bench / "results.json").read_text())
    return rc, results, (bench / "RESULTS.md").read_text()


def test_figures_record_commit_machine_and_measured_code(repo: Path) -> None:
    harness = _harness()
    rc, results, md = _run(harness, repo, ["bench_good"])
    assert rc == 0
    fig = results["good_speed"]
    # results.json and RESULTS.md are written by the run, so the tree is dirty from here on.
    assert fig["commit"] == _git(repo, "rev-parse", "--short", "HEAD")
    assert fig["machine"] == MACHINE
    assert fig["module"] == "bench_good"
    assert fig["measures"] == ["bench/bench_good.py", "code.py"]
    assert "stale" not in fig
    assert "Test CPU, 2 cores, 2 torch threads, flags: avx2" in md
    assert "| M1 |" in md


def test_failing_benchmark_exits_nonzero_and_marks_its_figures_stale(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    harness = _harness()
    bench = repo / "bench"
    (bench / "bench_fail.py").write_text(FAILING)
    # Figures an earlier run of both modules left behind.
    old = {
        "fail_speed": {"value": 9.0, "module": "bench_fail", "commit": "0000000"},
        "good_dropped": {"value": 1.0, "module": "bench_good", "commit": "0000000"},
    }
    (bench / "results.json").write_text(json.dumps(old))
    rc, results, md = _run(harness, repo, ["bench_fail", "bench_good"])
    assert rc == 1
    assert "bench_fail (RuntimeError: the benchmark broke)" in capsys.readouterr().err
    assert "failed" in results["fail_speed"]["stale"]
    assert "the benchmark broke" in results["fail_speed"]["stale"]
    assert results["fail_speed"]["value"] == 9.0  # kept, but marked
    # bench_good ran but no longer produces good_dropped: stale, not fresh-looking.
    assert "without producing it" in results["good_dropped"]["stale"]
    assert "stale" not in results["good_speed"]
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| `")}
    assert "**stale**" in rows["`fail_speed`"]
    assert "**stale**" in rows["`good_dropped`"]
    assert "**stale**" not in rows["`good_speed`"]


def test_a_stale_figure_is_fresh_again_once_remeasured(repo: Path) -> None:
    harness = _harness()
    bench = repo / "bench"
    old = {"good_speed": {"value": 1.0, "module": "bench_good", "stale": "old reason"}}
    (bench / "results.json").write_text(json.dumps(old))
    rc, results, _ = _run(harness, repo, ["bench_good"])
    assert rc == 0
    assert "stale" not in results["good_speed"]
    assert results["good_speed"]["value"] == 2.0


def test_figure_on_code_changed_since_is_marked_outdated(repo: Path) -> None:
    harness = _harness()
    (repo / ".gitignore").write_text("bench/results.json\nbench/RESULTS.md\n__pycache__/\n")
    _git(repo, "add", ".gitignore")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ignore")
    rc, results, md = _run(harness, repo, ["bench_good"])
    assert rc == 0
    measured_on = results["good_speed"]["commit"]
    assert "+dirty" not in measured_on
    assert "outdated" not in md
    (repo / "code.py").write_text("x = 2\n")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "change code")
    changed = _git(repo, "rev-parse", "--short", "HEAD")
    md = harness.render(results, repo)
    assert f"**outdated**: the code it measures changed in {changed}, after {measured_on}" in md
    # A change to code the figure does not measure leaves it current.
    _git(repo, "reset", "-q", "--hard", "HEAD~1")
    (repo / "other.py").write_text("y = 1\n")
    _git(repo, "add", "other.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "other")
    assert "outdated" not in harness.render(results, repo)


def test_uncommitted_measured_code_is_flagged(repo: Path) -> None:
    harness = _harness()
    (repo / "code.py").write_text("x = 3\n")
    rc, results, md = _run(harness, repo, ["bench_good"])
    assert rc == 0
    assert results["good_speed"]["commit"].endswith("+dirty")
    assert results["good_speed"]["uncommitted"] == ["code.py"]
    assert "uncommitted changes to code.py" in md


def test_main_refuses_an_unknown_benchmark(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    harness = _harness()
    assert harness.main(["bench_nope"], bench_dir=repo / "bench") == 2
    assert "no benchmark bench_nope" in capsys.readouterr().out


def test_default_machine_fields_come_from_hardware() -> None:
    harness = _harness()
    fields = harness.machine_fields()
    assert set(fields) >= {"cpu_model", "cores", "threads", "flags", "torch", "cuda"}
    assert isinstance(fields["flags"], list)


def test_bench_notes_hold_no_hardware_literals() -> None:
    """No note states a CPU fact or a past measurement as fixed text (issue 15)."""
    banned = (
        "no AMX",
        "avx512_bf16",
        "on this CPU",
        "2-core",
        "two cores",
        "(no recompilation)",
        "10-25%",
    )
    for path in sorted((REPO / "bench").glob("*.py")):
        text = path.read_text()
        for word in banned:
            assert word not in text, f"{path.name} states {word!r} as a literal"


def test_quick_mode_keeps_its_figures_out_of_the_record(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = _harness()
    monkeypatch.setenv("EOSFM_BENCH_QUICK", "1")
    calls: list[tuple[Path, Path]] = []
    monkeypatch.setattr(
        harness,
        "run_benchmarks",
        lambda files, results, markdown: calls.append((results, markdown)) or 0,
    )
    assert harness.main([], bench_dir=repo / "bench") == 0
    assert calls == [
        (
            repo / "bench" / "out" / "quick" / "results.json",
            repo / "bench" / "out" / "quick" / "RESULTS.md",
        )
    ]
