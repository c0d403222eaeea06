"""The task kinds a specialist trains on, and the LightningModule class of each."""

from __future__ import annotations

from eosfm_cli.errors import ProfileError
from eosfm_cli.tasks.change_detection import ChangeDetectionTask
from eosfm_cli.tasks.classification import ClassificationTask, MultiLabelTask
from eosfm_cli.tasks.detection import DetectionTask
from eosfm_cli.tasks.regression import RegressionTask
from eosfm_cli.tasks.segmentation import SegmentationTask
from eosfm_cli.tasks.specialist import SpecialistTask

TASKS: dict[str, type[SpecialistTask]] = {
    "classification": ClassificationTask,
    "multilabel": MultiLabelTask,
    "segmentation": SegmentationTask,
    "change_detection": ChangeDetectionTask,
    "regression": RegressionTask,
    "detection": DetectionTask,
}


def unknown_task(kind: str) -> ProfileError:
    """The error for a task kind no task class handles."""
    return ProfileError(
        f"task {kind!r} cannot train a specialist yet",
        where="dataset.task",
        hint=f"choose one of {', '.join(TASKS)}",
    )


def task_class(kind: str) -> type[SpecialistTask]:
    """Return the specialist LightningModule class of a task kind.

    Raises:
        ProfileError: for an unknown task kind.
    """
    if kind not in TASKS:
        raise unknown_task(kind)
    return TASKS[kind]
