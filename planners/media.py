"""Pictures of an MPC episode: a video of the camera beside the goal, and energy per step."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from planners.mpc import EpisodeResult


def side_by_side(frame: np.ndarray, goal: np.ndarray, scale: int = 4) -> np.ndarray:
    """[H, W, 3] camera frame and goal -> [scale*H, scale*(2W + 2), 3], a white gap between them."""
    gap = np.full((frame.shape[0], 2, 3), 255, dtype=np.uint8)
    image = np.concatenate([frame, gap, goal], axis=1)
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


def goal_per_frame(result: EpisodeResult) -> list[int]:
    """Index of the goal image the planner aimed at when each recorded frame was the camera view
    (frame 0 is the view after reset; frame k follows the k-th executed action)."""
    per_step = [r.goal_index for r in result.records for _ in range(r.executed)]
    first = result.records[0].goal_index if result.records else 0
    return [first, *per_step][: len(result.frames)]


def write_episode_video(result: EpisodeResult, path: str | Path, fps: int = 5, scale: int = 4) -> None:
    """mp4 of the camera view (left) beside the goal image it is planning toward (right; subgoal
    images in turn, then the goal), one frame per env step."""
    import imageio.v3 as iio

    if not result.frames or not result.goal_pixels:
        raise ValueError("the episode was run without record_frames=True: no frames to write")
    goals = goal_per_frame(result)
    video = np.stack([side_by_side(f, result.goal_pixels[g], scale) for f, g in zip(result.frames, goals)])
    video = video[:, : video.shape[1] // 2 * 2, : video.shape[2] // 2 * 2]  # even sizes for H.264
    iio.imwrite(path, video, plugin="pyav", fps=fps, codec="libx264")


def plot_energies(result: EpisodeResult, path: str | Path, title: str = "") -> None:
    """Energy per planning step: the current frame's distance to the goal, and the planner's best
    predicted energy; the first success step is marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r.step for r in result.records]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, [r.energy_now for r in result.records], "o-", label="now: |z(frame) - z(goal)|")
    ax.plot(steps, [r.energy_planned for r in result.records], "s--", label="planned: best predicted energy")
    for i, step in enumerate(result.switched_at):
        ax.axvline(step, color="gray", ls=":", label="next subgoal" if i == 0 else None)
    if result.first_success_step is not None:
        ax.axvline(result.first_success_step, color="green", alpha=0.5, label=f"first success (step {result.first_success_step})")
    ax.set_xlabel("env step")
    ax.set_ylabel("energy (L1)")
    ax.set_title(title or f"seed {result.seed}: success at end {result.success_at_end}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
