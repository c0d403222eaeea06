"""The package's shape: no import cycles, layers respected, no module doing too many jobs.

The graph is built from the source (``ast``), with imports inside functions counted as well as
module-level ones; imports under ``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "eosfm_cli"
#: Pure data tables, allowed to be longer than a module doing one job.
DATA_TABLES = {"eosfm_cli.data.registry"}
MAX_LINES = 400
#: A stage only orchestrates.
MAX_STAGE_LINES = 300


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, modules: dict[str, Path], here: str) -> set[str]:
    """eosfm_cli modules imported anywhere in ``tree`` (functions included)."""
    found: set[str] = set()

    def target(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("eosfm_cli"):
                    t = target(alias.name)
                    if t:
                        found.add(t)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.startswith("eosfm_cli")
        ):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                t = full if full in modules else target(node.module)
                if t:
                    found.add(t)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(here)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = _imports(tree, modules, name)
    # A package's __init__ is imported with any of its modules; that edge is not a choice
    # of the module, so it is left out (the __init__ files import nothing of their own).
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_package_has_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_models_import_nothing_above_them() -> None:
    above = ("eosfm_cli.workspace", "eosfm_cli.stages", "eosfm_cli.cli", "eosfm_cli.emissions")
    above += ("eosfm_cli.context", "eosfm_cli.head_runs", "eosfm_cli.console", "eosfm_cli.demo")
    bad = [
        f"{mod} imports {dep}"
        for mod, deps in import_graph().items()
        if mod.startswith("eosfm_cli.models")
        for dep in sorted(deps)
        if dep.startswith(above)
    ]
    assert not bad, bad


def test_a_stage_never_imports_another_stage() -> None:
    bad = [
        f"{mod} imports {dep}"
        for mod, deps in import_graph().items()
        if mod.startswith("eosfm_cli.stages.")
        for dep in sorted(deps)
        if dep.startswith("eosfm_cli.stages.")
    ]
    assert not bad, bad


def test_no_module_does_too_many_jobs() -> None:
    long = []
    for name, path in all_modules().items():
        lines = len(path.read_text().splitlines())
        limit = MAX_STAGE_LINES if name.startswith("eosfm_cli.stages.") else MAX_LINES
        if name not in DATA_TABLES and lines > limit:
            long.append(f"{name}: {lines} lines (limit {limit})")
    assert not long, long


def test_models_import_without_the_cli_stack() -> None:
    # The models are a library: no typer, rich, lightning or rasterio needed to build and run
    # an ensemble.
    code = """
import sys
for blocked in ("typer", "rich", "lightning", "pytorch_lightning", "rasterio"):
    sys.modules[blocked] = None
import torch, timm
from eosfm_cli.models import EosFM, SpecialistSpec
from eosfm_cli.models.native_file import save_ensemble
from eosfm_cli.models.generalist import Generalist, HeadConfig
model = timm.create_model("convnextv2_atto", features_only=True, in_chans=3)
spec = SpecialistSpec(name="a", backbone="convnextv2_atto",
                      bands=["B04", "B03", "B02"], mean=[0.0] * 3, std=[1.0] * 3)
path = sys.argv[1]
save_ensemble(path, [spec], [model.state_dict()])
enc = EosFM.from_file(path, input_bands=["B02", "B03", "B04"])
with torch.inference_mode():
    feats = enc(torch.rand(1, 3, 64, 64))
assert [f.shape[1] for f in feats] == enc.out_channels
"""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(Path(folder) / "e.safetensors")],
            capture_output=True,
            text=True,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
