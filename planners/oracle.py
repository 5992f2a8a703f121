"""PRIVILEGED baseline: the simulator itself as the world model (an upper bound for planning).

It reads the simulator's state, so it separates planner failures from world-model failures; it is
never what the learned planner uses. Works on any env that offers (duck typing; `planners` does
not import `envs`): `get_sim_state()`, `set_sim_state(s)`, `step_physics(action)`,
`privileged_features()`, the goal image and state (`goal_pixels`, `goal_features`) and the subgoal
images and states (`subgoal_pixels`, `subgoal_features`: lists, possibly empty).
"""
from __future__ import annotations

import numpy as np
import torch

from planners.protocol import WorldModelDefaults

REQUIRED = ("get_sim_state", "set_sim_state", "step_physics", "privileged_features", "goal_pixels", "goal_features",
            "subgoal_pixels", "subgoal_features")


class OracleSubgoalPrior(WorldModelDefaults):
    """PRIVILEGED: the two-level oracle's high level without a search. A subgoal prior trained on the
    robot logs' environment state (`vjepa_ac.subgoal_prior_training`, `data.observation:
    environment_state`) proposes the next state from the oracle's features of the present and of the
    goal image, which are that same environment state."""

    privileged = True

    def __init__(self, prior: torch.nn.Module, action_dim: int):
        self.prior, self.action_dim = prior, action_dim

    def propose_subgoal(self, z_now: torch.Tensor, state_now: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        return self.prior.propose(z_now.float(), state_now.float(), z_goal.float())


class PrivilegedOracleWorldModel(WorldModelDefaults):
    """The simulator as a world model. PRIVILEGED: it reads the true simulator state.

    Its "embedding" of the present is the env's privileged feature vector, shape [1, 1, F] (one
    token), so planners and the L1 energy treat it like encoder latents; `encode` ignores the
    pixels and reads the *current* simulator state, so call it only on the current observation
    (as the MPC loop does). `encode_goal` maps each of the env's own goal and subgoal images to
the features of the state it was rendered from. `rollout` clones the
    simulator state, plays every candidate's actions from it and restores it afterwards.
    """

    privileged = True

    def __init__(self, env):
        self.sim = env.unwrapped
        missing = [name for name in REQUIRED if not hasattr(self.sim, name)]
        if missing:
            raise TypeError(f"{type(self.sim).__name__} lacks {missing}, needed by the privileged oracle world model")
        self.action_dim = int(np.prod(env.action_space.shape))

    def _features(self, vector) -> torch.Tensor:
        return torch.as_tensor(np.asarray(vector, dtype=np.float32))[None, None]  # [1, 1, F]

    def encode(self, frames) -> torch.Tensor:
        """Privileged features of the current simulator state, [B, 1, F] (pixels unused)."""
        return self._features(self.sim.privileged_features()).expand(len(frames), -1, -1).clone()

    def encode_goal(self, frames) -> torch.Tensor:
        """Privileged features of the states behind the env's goal or subgoal images, [B, 1, F]."""
        images = [*self.sim.subgoal_pixels, self.sim.goal_pixels]
        features = [*self.sim.subgoal_features, self.sim.goal_features]
        out = []
        for frame in np.asarray(frames):
            matches = [i for i, image in enumerate(images) if np.array_equal(image, frame)]
            if not matches:
                raise ValueError("the privileged oracle knows the states behind this episode's goal and subgoal "
                                 "images only; got another image")
            out.append(features[matches[-1]])
        return torch.cat([self._features(f) for f in out])

    def rollout(self, z: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Simulate each candidate from the current simulator state: actions [B, H, A] -> [B, H, 1, F].

        `z` and `state` are not needed (the simulator holds the present) and are ignored.
        """
        actions = np.asarray(torch.as_tensor(actions).detach().cpu(), dtype=np.float32)
        saved = self.sim.get_sim_state()
        out = []
        try:
            for candidate in actions:
                self.sim.set_sim_state(saved)
                steps = []
                for action in candidate:
                    self.sim.step_physics(action)
                    steps.append(np.asarray(self.sim.privileged_features(), dtype=np.float32))
                out.append(steps)
        finally:
            self.sim.set_sim_state(saved)
        return torch.from_numpy(np.asarray(out, dtype=np.float32))[:, :, None, :]
