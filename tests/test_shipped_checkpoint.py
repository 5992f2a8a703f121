"""The checkpoint shipped in the repository loads and plans one step on the env it was trained for."""
from pathlib import Path

import numpy as np
import torch

import envs
from planners import CEM
from vjepa_ac import WorldModel

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "vjepa_ac_tiny"


def test_shipped_checkpoint_loads_and_plans_one_step():
    wm = WorldModel.from_checkpoint(CHECKPOINT)
    env = envs.make_env("reach", resolution=wm.resolution)
    obs, info = env.reset(seed=0)
    z_now, z_goal = wm.encode(obs["pixels"][None]), wm.encode(info["goal_pixels"][None])
    assert z_now.shape == z_goal.shape and z_now.shape[0] == 1 and torch.isfinite(z_now).all()
    planner = CEM(env.action_space.low, env.action_space.high, horizon=2, num_samples=32, num_elites=4,
                  iterations=2, frozen_dims=[3, 4, 5])
    actions = planner.plan(wm, z_now, torch.as_tensor(obs["state"])[None], z_goal)
    assert actions.shape == (2, 7)
    low, high = torch.as_tensor(env.action_space.low), torch.as_tensor(env.action_space.high)
    assert ((actions >= low) & (actions <= high)).all() and (actions[:, 3:6] == 0).all()
    assert np.isfinite(planner.stats["energy"])
    env.step(actions[0].numpy())


def test_shipped_subgoal_priors_propose_a_state_from_the_goal_image():
    from vjepa_ac.models.subgoal_prior import load_subgoal_prior

    wm = WorldModel.from_checkpoint(CHECKPOINT)
    env = envs.make_env("grasp", resolution=wm.resolution)
    obs, info = env.reset(seed=0)
    state = torch.as_tensor(obs["state"])[None]
    proposal = wm.propose_subgoal(wm.encode(obs["pixels"][None]), state, wm.encode(info["goal_pixels"][None]))
    assert proposal.shape == (1, 7) and torch.isfinite(proposal).all()
    u = env.unwrapped   # PRIVILEGED: the oracle's prior reads the environment state
    oracle = load_subgoal_prior(CHECKPOINT.parent / "subgoal_prior_oracle")
    features = [torch.as_tensor(f, dtype=torch.float32)[None, None] for f in (u.privileged_features(), u.goal_features)]
    assert oracle.propose(features[0], state.float(), features[1]).shape == (1, 7)


def test_shipped_front_wrist_prior_reads_both_cameras_and_the_front_goal_image():
    from planners.factory import load_world_model

    front_wrist = CHECKPOINT.parent / "vjepa_ac_tiny_front_wrist"
    wm = load_world_model({"pixels": str(front_wrist), "wrist_pixels": {"checkpoint": str(front_wrist),
                                                                        "energy_weight": 0.0}})
    assert wm.models["pixels"].shares_encoder(WorldModel.from_checkpoint(CHECKPOINT))
    env = envs.make_env("pick_place", resolution=wm.resolution, wrist_camera=True)
    obs, info = env.reset(seed=0)
    now = np.stack([obs["pixels"], obs["wrist_pixels"]])[None]
    goal = np.stack([info["goal_pixels"], info["goal_wrist_pixels"]])[None]
    proposal = wm.propose_subgoal(wm.encode(now), torch.as_tensor(obs["state"])[None], wm.encode_goal(goal))
    assert proposal.shape == (1, 7) and torch.isfinite(proposal).all()
