"""Does an energy rank states the way the task does? An offline check of a goal-image energy, no planning.

For each recorded episode, the L1 energy of every frame's embedding to the goal image's embedding is
compared with the task's PRIVILEGED distance at that frame (what the benchmark reports): the Spearman
rank correlation within the episode (one goal image, as when planning), averaged over episodes, with
a bootstrap 95 % interval over episodes. An embedding is any function of uint8 frames `[T, H, W, 3]`;
raw pixels scaled to [0, 1] are the floor a learned representation should beat.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.stats import rankdata

Embed = Callable[[np.ndarray], np.ndarray]   # uint8 frames [T, H, W, 3] -> embeddings [T, ...]


def pixel_embedding(frames: np.ndarray) -> np.ndarray:
    """Raw pixels scaled to [0, 1]: the floor any learned representation should beat."""
    return np.asarray(frames, np.float32) / 255.0


def goal_energies(embed: Embed, frames: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """L1 energy (mean absolute difference over everything but the frame axis) of each frame to `goal`."""
    z = np.asarray(embed(np.concatenate([frames, goal[None]])))
    z = z.reshape(len(z), -1)
    return np.abs(z[:-1] - z[-1]).mean(axis=1)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); nan when either side is constant."""
    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclass
class RankCorrelation:
    mean: float       # mean over episodes of the within-episode Spearman correlation
    low: float        # bootstrap 95 % interval of that mean, resampling episodes
    high: float
    episodes: int     # episodes with a defined correlation (neither energy nor distance constant)

    def __str__(self) -> str:
        return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def rank_correlation(energies: list[np.ndarray], distances: list[np.ndarray], bootstrap: int = 2000,
                     seed: int = 0) -> RankCorrelation:
    """Within-episode Spearman between energy and task distance, averaged over episodes, with a
    percentile bootstrap interval over episodes."""
    if len(energies) != len(distances):
        raise ValueError(f"{len(energies)} energy series but {len(distances)} distance series")
    per_episode = np.array([spearman(e, d) for e, d in zip(energies, distances)])
    per_episode = per_episode[np.isfinite(per_episode)]
    if per_episode.size == 0:
        return RankCorrelation(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = rng.choice(per_episode, (bootstrap, per_episode.size)).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return RankCorrelation(float(per_episode.mean()), float(low), float(high), int(per_episode.size))


def markdown_table(results: dict[str, dict[str, dict[str, RankCorrelation]]]) -> str:
    """results[task][camera][representation] -> one row per task and camera, one column per representation."""
    representations = list(dict.fromkeys(r for cameras in results.values() for reps in cameras.values() for r in reps))
    lines = ["| task | camera | " + " | ".join(representations) + " |",
             "|---|---|" + "---:|" * len(representations)]
    for task, cameras in results.items():
        for camera, reps in cameras.items():
            cells = [f"{reps[r]} (n={reps[r].episodes})" if r in reps else "-" for r in representations]
            lines.append(f"| {task} | {camera} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
