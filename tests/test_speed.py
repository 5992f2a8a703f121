"""The timing helpers behind scripts/env_speed.py, rollout_speed.py and data_speed.py."""

import pytest
from omegaconf import OmegaConf

envs = pytest.importorskip("envs")
from envs.speed import calls_per_s  # noqa: E402
from vjepa_ac.speed import model_spec, timings  # noqa: E402


def test_calls_per_s_calls_once_per_action_on_a_reset_env():
    calls = []
    rate = calls_per_s("reach", 32, 5, 0, lambda env, i, action: calls.append((i, action.shape)))
    assert calls == [(i, (7,)) for i in range(5)] and rate > 0


def test_timings_warm_up_then_median_and_best():
    calls = []
    median, best = timings(lambda: calls.append(1), repeats=3)
    assert len(calls) == 4 and 0 <= best <= median


def test_model_spec_overrides_predictor_sizes_and_pool():
    cfg = OmegaConf.create({"model": {"hidden_size": 8},
                            "world_model": {"pool": 2, "predictor": {"dim": 96, "depth": 4}}})
    spec = model_spec(cfg, {"dim": 64, "pool": 4})
    assert spec.pool == 4 and spec.predictor == {"dim": 64, "depth": 4} and spec.encoder == {"hidden_size": 8}
    assert model_spec(cfg, {}).pool == 2
