"""Datasets: video clips for pretraining, robot-log windows (LeRobot v3.0) for fine-tuning."""

from vjepa_ac.data.lerobot_format import DatasetFormatError
from vjepa_ac.data.lerobot_writer import LeRobotWriter
from vjepa_ac.data.robot_logs import RobotLogDataset
from vjepa_ac.data.video import VideoClipDataset
from vjepa_ac.data.video_io import VideoError

__all__ = ["DatasetFormatError", "LeRobotWriter", "RobotLogDataset", "VideoClipDataset", "VideoError"]
