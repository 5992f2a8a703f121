"""Tests of the offline energy-ranking check: Spearman, energies, the episode bootstrap, and the script
end to end on one short episode."""
import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from planners.energy_ranking import (RankCorrelation, goal_energies, markdown_table, pixel_embedding,
                                     rank_correlation, spearman)


def test_spearman():
    x = np.array([0.1, 0.4, 0.2, 0.9, 0.4])
    assert spearman(x, 2 * x + 1) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    y = np.array([3.0, 1.0, 2.0, 2.0, 5.0])
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)   # ties get average ranks
    assert np.isnan(spearman(x, np.ones(5)))


def test_pixel_energies():
    goal = np.zeros((4, 4, 3), np.uint8)
    frames = np.stack([goal, np.full_like(goal, 255), np.full_like(goal, 51)])
    np.testing.assert_allclose(goal_energies(pixel_embedding, frames, goal), [0.0, 1.0, 0.2], rtol=1e-6)


def test_rank_correlation_over_episodes():
    rng = np.random.default_rng(0)
    distances = [rng.uniform(size=12) for _ in range(5)]
    perfect = rank_correlation([d ** 2 for d in distances], distances)
    assert (perfect.mean, perfect.low, perfect.high, perfect.episodes) == pytest.approx((1.0, 1.0, 1.0, 5))
    mixed = rank_correlation([d if i % 2 else -d for i, d in enumerate(distances)] + [np.ones(12)],
                             distances + [distances[0]])   # the last episode has a constant energy: skipped
    assert mixed.episodes == 5 and mixed.mean == pytest.approx(-0.2)
    assert -1.0 <= mixed.low < mixed.mean < mixed.high <= 1.0
    with pytest.raises(ValueError, match="distance series"):
        rank_correlation(distances, distances[:2])
    table = markdown_table({"reach": {"front": {"pixels": perfect, "encoder": mixed}}})
    assert "| reach | front | +1.00 [+1.00, +1.00] (n=5) | -0.20" in table


def test_script_end_to_end(tmp_path, run_script):
    run_script("energy_ranking", ["tasks=[reach]", "cameras=[front,workspace]", "episodes=2",
                                  "envs.reach.episode_steps=6", f"output_dir={tmp_path}"])
    results = json.loads((tmp_path / "energy_ranking.json").read_text())["results"]["reach"]
    assert set(results) == {"front", "workspace"}
    for reps in results.values():
        assert set(reps) == {"pixels", "encoder (vjepa_ac_tiny)"}
        assert all(-1 <= RankCorrelation(**r).mean <= 1 for r in reps.values())
    assert "| reach | workspace |" in (tmp_path / "energy_ranking.md").read_text()
