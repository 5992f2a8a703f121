"""Datasets: video clips for pretraining, robot-log windows (LeRobot v3.0) for fine-tuning.

Names are imported on first use, so that collector worker processes importing
`vjepa_ac.data.sim_collection` do not pay for torch.
"""

import importlib

_EXPORTS = {
    "DatasetFormatError": "vjepa_ac.data.lerobot_format",
    "LeRobotWriter": "vjepa_ac.data.lerobot_writer",
    "RobotLogDataset": "vjepa_ac.data.robot_logs",
    "VideoClipDataset": "vjepa_ac.data.video",
    "VideoError": "vjepa_ac.data.video_io",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vjepa_ac.data' has no attribute {name!r}")
