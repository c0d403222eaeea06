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
    assert raw["data"]["root"] and raw["trainer"]["max_epochs"] > 0 and "loss" in raw["dataset"]


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
