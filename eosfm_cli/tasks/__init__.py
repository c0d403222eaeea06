"""LightningModules for every task: specialists trained from scratch, heads over EosFM.

See :mod:`eosfm_cli.tasks.base` for the template every task follows and the metric names.
"""

from eosfm_cli.tasks.base import EOTask
from eosfm_cli.tasks.change_detection import ChangeDetectionTask
from eosfm_cli.tasks.classification import ClassificationTask, MultiLabelTask
from eosfm_cli.tasks.detection import DetectionTask
from eosfm_cli.tasks.heads import (
    HEAD_TASKS,
    ChangeDetectionHeadTask,
    ClassificationHeadTask,
    DetectionHeadTask,
    HeadTask,
    MultiLabelHeadTask,
    RegressionHeadTask,
    SegmentationHeadTask,
    head_task,
)
from eosfm_cli.tasks.kinds import TASKS, task_class
from eosfm_cli.tasks.regression import RegressionTask
from eosfm_cli.tasks.segmentation import SegmentationTask
from eosfm_cli.tasks.specialist import SpecialistTask

__all__ = [
    "HEAD_TASKS",
    "TASKS",
    "ChangeDetectionHeadTask",
    "ChangeDetectionTask",
    "ClassificationHeadTask",
    "ClassificationTask",
    "DetectionHeadTask",
    "DetectionTask",
    "EOTask",
    "HeadTask",
    "MultiLabelHeadTask",
    "MultiLabelTask",
    "RegressionHeadTask",
    "RegressionTask",
    "SegmentationHeadTask",
    "SegmentationTask",
    "SpecialistTask",
    "head_task",
    "task_class",
]
