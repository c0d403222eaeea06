from pathlib import Path

import pytest
import yaml

from eosfm_cli.context import resolve
from eosfm_cli.data.registry import EXPERIMENTS, PAPER_EXPERIMENTS
from eosfm_cli.errors import ProfileError
from eosfm_cli.profiles import apply_overrides, load_profile, parse_set

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "profiles" / "default.yaml"


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_default_profile_is_valid() -> None:
    prof = load_profile(DEFAULT)
    assert prof.dataset is not None and prof.dataset.name == "synthetic_s2"
    assert prof.emissions.country_iso_code == "FRA"
    assert len(prof.dataset.bands) == 13


@pytest.mark.parametrize("name", PAPER_EXPERIMENTS)
def test_every_paper_experiment_has_a_valid_profile(name: str) -> None:
    path = REPO / "profiles" / "datasets" / f"{name}.yaml"
    assert path.is_file()
    ctx = resolve(DEFAULT, dataset=name)
    spec = EXPERIMENTS[name]
    ds = ctx.profile.dataset
    assert ds is not None and ds.name == name and ds.task == spec.task
    assert tuple(ds.bands) == spec.bands
    assert len(ds.classes) == len(spec.classes)
    raw = yaml.safe_load(path.read_text())
    # The file holds what a user changes; the registry holds the experiment's facts.
    assert raw["data"]["root"] and raw["trainer"]["max_epochs"] > 0 and "dataset" not in raw


def test_class_counts_from_dataset_docs() -> None:
    # The reference code used 10 for FireRisk; the dataset has 7 classes.
    assert len(EXPERIMENTS["firerisk"].classes) == 7
    assert len(EXPERIMENTS["eurosat_s2"].classes) == 10
    assert len(EXPERIMENTS["ben_rgb"].classes) == 19
    assert len(EXPERIMENTS["loveda"].classes) == 8 and EXPERIMENTS["loveda"].ignore_index == 0
    assert len(EXPERIMENTS["caffe"].classes) == 4


def test_unknown_key_names_file_key_and_suggestion(tmp_path: Path) -> None:
    p = write(tmp_path, "trainer:\n  max_epoch: 3\n")
    with pytest.raises(ProfileError) as err:
        load_profile(p)
    msg = err.value.one_line()
    assert str(p) in msg and "trainer.max_epoch" in msg and "trainer.max_epochs" in msg


def test_unknown_top_level_key(tmp_path: Path) -> None:
    p = write(tmp_path, "workspce: ws\n")
    with pytest.raises(ProfileError, match="did you mean 'workspace'"):
        load_profile(p)


def test_wrong_type(tmp_path: Path) -> None:
    p = write(tmp_path, "trainer:\n  batch_size: many\n")
    with pytest.raises(ProfileError, match=r"trainer\.batch_size"):
        load_profile(p)


def test_zero_epochs_refused(tmp_path: Path) -> None:
    p = write(tmp_path, "trainer:\n  max_epochs: 0\n")
    with pytest.raises(ProfileError, match="greater than 0"):
        load_profile(p)


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    p = write(tmp_path, "trainer:\n  max_epochs: [3\n")
    with pytest.raises(ProfileError, match=r"YAML syntax error"):
        load_profile(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "nope.yaml")


def test_include_and_override(tmp_path: Path) -> None:
    write(tmp_path, "seed: 1\ntrainer:\n  max_epochs: 7\n  batch_size: 8\n", "base.yaml")
    p = write(tmp_path, "include: base.yaml\ntrainer:\n  max_epochs: 9\n")
    prof = load_profile(p, ["trainer.lr=0.5", "seed=3"])
    assert prof.trainer.max_epochs == 9 and prof.trainer.batch_size == 8
    assert prof.trainer.lr == 0.5 and prof.seed == 3


def test_include_cycle(tmp_path: Path) -> None:
    write(tmp_path, "include: b.yaml\n", "a.yaml")
    write(tmp_path, "include: a.yaml\n", "b.yaml")
    with pytest.raises(ProfileError, match="cycle"):
        load_profile(tmp_path / "a.yaml")


def test_unknown_band_in_profile(tmp_path: Path) -> None:
    p = write(tmp_path, "dataset:\n  name: eurosat_s2\n  task: classification\n  bands: [B99]\n")
    with pytest.raises(ProfileError, match=r"dataset\.bands"):
        load_profile(p)


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("a=1", 1),
        ("a=1.5", 1.5),
        ("a=true", True),
        ("a=null", None),
        ("a=x", "x"),
        ("a=[1, 2]", [1, 2]),
        ("a=", None),
    ],
)
def test_parse_set_values_are_yaml_scalars(expr: str, value: object) -> None:
    assert parse_set(expr) == (["a"], value)


@pytest.mark.parametrize("expr", ["novalue", "=3", "a..b=1"])
def test_bad_set(expr: str) -> None:
    with pytest.raises(ProfileError, match="--set"):
        apply_overrides({}, [expr])


def test_set_into_a_scalar_is_refused() -> None:
    with pytest.raises(ProfileError, match="not a mapping"):
        apply_overrides({"seed": 1}, ["seed.x=2"])


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="did you mean 'eurosat_s2'"):
        resolve(DEFAULT, dataset="eurosat_s3")


def test_task_mismatch_is_refused() -> None:
    with pytest.raises(ProfileError, match=r"dataset\.task"):
        resolve(DEFAULT, ["dataset.task=segmentation"])


def test_root_and_workspace_options(tmp_path: Path) -> None:
    ctx = resolve(DEFAULT, dataset="eurosat_s2", root=tmp_path / "d", workspace=tmp_path / "w")
    assert ctx.profile.data.root == str(tmp_path / "d")
    assert ctx.workspace.root == (tmp_path / "w").absolute()


# --- One source for each dataset fact: the registry; the experiment files hold user settings.

EXPERIMENT_FILES = sorted(p.stem for p in (REPO / "profiles" / "datasets").glob("*.yaml"))


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n != "folder"])
def test_resolved_dataset_section_is_the_registrys(name: str) -> None:
    spec = EXPERIMENTS[name]
    ds = resolve(DEFAULT, dataset=name).profile.dataset
    assert ds is not None and ds.name == name and ds.task == spec.task
    assert tuple(ds.bands) == spec.bands
    assert tuple(ds.classes) == spec.classes  # the names, in label order
    assert ds.loss == spec.loss
    assert ds.ignore_index == spec.ignore_index and ds.patch_size == spec.patch_size
    assert ds.options == spec.options


@pytest.mark.parametrize("name", [n for n in EXPERIMENT_FILES if n != "folder"])
def test_experiment_files_hold_only_what_a_user_changes(name: str) -> None:
    path = REPO / "profiles" / "datasets" / f"{name}.yaml"
    text = path.read_text()
    raw = yaml.safe_load(text)
    assert name in EXPERIMENTS
    assert set(raw) <= {"data", "trainer"}, sorted(raw)
    assert set(raw["data"]) == {"root"}
    first = text.splitlines()[0]
    assert first.startswith(f"# {name}:") and f"eosfm datasets list {name}" in first
    # The file starts from the paper's epoch budget, which the registry states.
    assert raw["trainer"]["max_epochs"] == EXPERIMENTS[name].default_epochs


#: Modules that name classes as keys of a file-format or generator fact, not as a class list:
#: the CORINE -> 19-class mapping of BigEarthNet v1, the synthetic classes' signatures.
CLASS_KEYED = {"registry.py", "bigearthnet_labels.py", "synthetic_render.py"}


def test_no_experiment_file_or_module_keeps_its_own_class_list() -> None:
    names = {c for spec in EXPERIMENTS.values() for c in spec.classes if len(c) > 6}
    files = [p for p in (REPO / "profiles" / "datasets").glob("*.yaml") if p.stem != "folder"]
    for path in files:
        text = path.read_text()
        assert not [c for c in names if c in text], path
    for path in (REPO / "eosfm_cli" / "data").glob("*.py"):
        if path.name not in CLASS_KEYED:
            text = path.read_text()
            assert not [c for c in names if f'"{c}"' in text], path


def test_the_experiment_file_and_set_win_over_the_registry(tmp_path: Path) -> None:
    base = write(tmp_path, f"include: {DEFAULT}\n", "base.yaml")
    (tmp_path / "datasets").mkdir()
    write(
        tmp_path / "datasets",
        "dataset:\n  patch_size: 48\n  options:\n    crops_per_image: 3\n",
        "loveda.yaml",
    )
    ds = resolve(base, ["dataset.loss=dice"], dataset="loveda").profile.dataset
    spec = EXPERIMENTS["loveda"]
    assert ds is not None and ds.patch_size == 48 and ds.loss == "dice"
    # options merge key by key: the file's crops, the registry's other defaults
    assert ds.options == {**spec.options, "crops_per_image": 3}
    assert tuple(ds.classes) == spec.classes and ds.ignore_index == spec.ignore_index


def test_a_profile_file_of_an_unregistered_name_states_its_dataset(tmp_path: Path) -> None:
    base = write(tmp_path, f"include: {DEFAULT}\n", "base.yaml")
    (tmp_path / "datasets").mkdir()
    folder = (REPO / "profiles" / "datasets" / "folder.yaml").read_text()
    write(tmp_path / "datasets", folder.replace("include: ../default.yaml\n", ""), "tiles.yaml")
    ds = resolve(base, dataset="tiles").profile.dataset
    assert ds is not None and ds.name == "folder" and ds.task == "segmentation"
    assert ds.classes == ["background", "building", "water"]


def test_class_names_that_differ_are_refused_naming_the_first_difference() -> None:
    classes = list(EXPERIMENTS["eurosat_s2"].classes)
    renamed = [*classes[:3], "Road", *classes[4:]]
    with pytest.raises(ProfileError) as err:
        resolve(DEFAULT, [f"dataset.classes={renamed}"], dataset="eurosat_s2")
    line = err.value.one_line()
    assert "dataset.classes" in line and "class 3 is 'Road'" in line and "'Highway'" in line
    with pytest.raises(ProfileError) as err:
        resolve(DEFAULT, [f"dataset.classes={classes[:4]}"], dataset="eurosat_s2")
    line = err.value.one_line()
    assert "4 classes given, the eurosat_s2 dataset has 10" in line and "class 4" in line
    # the same names, in the dataset's order, pass
    resolve(DEFAULT, [f"dataset.classes={classes}"], dataset="eurosat_s2")


def test_datasets_list_describes_one_experiment() -> None:
    from typer.testing import CliRunner

    from eosfm_cli.cli import app

    res = CliRunner().invoke(app, ["datasets", "list", "firerisk"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    spec = EXPERIMENTS["firerisk"]
    for text in (*spec.classes, *spec.bands, spec.layout, spec.source):
        assert text in res.output
    res = CliRunner().invoke(app, ["datasets", "list", "firerisc"])
    assert res.exit_code == 2 and "did you mean 'firerisk'" in res.output
