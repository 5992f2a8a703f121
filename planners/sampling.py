"""Sampling-based planners: CEM (the reference), MPPI, random shooting."""
from __future__ import annotations

import torch

from planners.base import Planner
from planners.protocol import WorldModel
from vjepa_ac.state_action import GRIPPER_DIM


def gripper_commands(low: torch.Tensor, high: torch.Tensor, rest: torch.Tensor, gripper_dim: int) -> torch.Tensor:
    """The gripper's three commands {open fully, hold, close fully} as [low, rest, high] of its dim."""
    return torch.stack([low[gripper_dim], rest[gripper_dim], high[gripper_dim]])


def uniform_actions(low: torch.Tensor, high: torch.Tensor, shape: tuple[int, int], generator: torch.Generator,
                    gripper_dim: int | None = None, gripper_values: torch.Tensor | None = None) -> torch.Tensor:
    """Actions [*shape, A] uniform within [low, high]; with `gripper_dim`, that dim drawn from
    `gripper_values` (a switch, not a continuum). Not clipped to frozen dims."""
    u = torch.rand((*shape, low.numel()), generator=generator)
    actions = low + (high - low) * u
    if gripper_dim is not None:
        idx = torch.randint(0, len(gripper_values), shape, generator=generator)
        actions[..., gripper_dim] = gripper_values[idx]
    return actions


class SamplingPlanner(Planner):
    """A diagonal Gaussian over the continuous action dims and, when `gripper_dim` is set, a
    separate categorical over the gripper command {low, 0, high} per step (with the env's
    convention, gripper 0 = open and 1 = closed: open fully, hold, close fully): the gripper is a
    switch, and a Gaussian around "half closed" rarely samples one.

    Standard deviations are given as fractions of each dimension's half range, so the same
    numbers suit position (m) and rotation (rad) bounds.
    """

    def __init__(
        self,
        action_low,
        action_high,
        num_samples: int = 400,
        init_std: float = 1.0,
        gripper_dim: int | None = GRIPPER_DIM,
        min_gripper_prob: float = 0.05,
        close_in_place: bool = False,
        **kwargs,
    ):
        super().__init__(action_low, action_high, **kwargs)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if gripper_dim is not None and not 0 <= gripper_dim < self.action_dim:
            raise ValueError(f"gripper_dim {gripper_dim} out of range for a {self.action_dim}-D action")
        self.num_samples = num_samples
        self.init_std = init_std
        self.min_gripper_prob = min_gripper_prob
        # A frozen gripper stays frozen; otherwise it is sampled from its own categorical.
        self.gripper_dim = None if gripper_dim is None or self.frozen[gripper_dim] else gripper_dim
        self.gripper_values = None
        if self.gripper_dim is not None:
            self.gripper_values = gripper_commands(self.low, self.high, self.rest, self.gripper_dim)
            self.cost_dims[self.gripper_dim] = False  # a switch, not a motion: the action cost leaves it free
        self.close_in_place = close_in_place and self.gripper_dim is not None
        if self.close_in_place:
            self.close_still = self.rest.clone()  # the action of a closing step: close, every other dim at rest
            self.close_still[self.gripper_dim] = self.high[self.gripper_dim]

    def _clip(self, actions: torch.Tensor) -> torch.Tensor:
        """The base clip; with `close_in_place`, a step that closes the gripper does not move (the
        other dims held at rest). Why: closing while moving drags the fingers off the object, and a
        world model too coarse to predict that would score "close and lift at once" above "close, then
        lift" (the same end state one step sooner)."""
        actions = super()._clip(actions)
        if self.close_in_place:
            closing = actions[..., self.gripper_dim, None] >= self.high[self.gripper_dim]
            actions = torch.where(closing, self.close_still, actions)
        return actions

    def _initial(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean (warm start), std [H, A] and gripper probabilities [H, 3] to start from."""
        mean = self._warm_mean()
        std = (self.init_std * self.half_range).expand(self.horizon, -1).clone()
        probs = torch.full((self.horizon, 3), 1 / 3)
        return mean, std, probs

    def _sample(self, mean: torch.Tensor, std: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """num_samples candidates [S, H, A] from the Gaussian (and gripper categorical), clipped."""
        noise = torch.randn((self.num_samples, *mean.shape), generator=self.generator)
        actions = mean + std * noise
        if self.gripper_dim is not None:
            idx = torch.multinomial(probs, self.num_samples, replacement=True, generator=self.generator)  # [H, S]
            actions[..., self.gripper_dim] = self.gripper_values[idx.T]
        return self._clip(actions)

    def _sample_uniform(self) -> torch.Tensor:
        """num_samples candidates [S, H, A] uniform within the bounds."""
        return self._clip(uniform_actions(self.low, self.high, (self.num_samples, self.horizon), self.generator,
                                          self.gripper_dim, self.gripper_values))

    def _fit(self, actions: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Weighted mean, std [H, A] and gripper probabilities [H, 3] of candidates [S, H, A]."""
        w = weights[:, None, None]
        mean = (w * actions).sum(0)
        std = (w * (actions - mean) ** 2).sum(0).sqrt()
        probs = torch.full((self.horizon, 3), 1 / 3)
        if self.gripper_dim is not None:
            idx = (actions[..., self.gripper_dim, None] - self.gripper_values).abs().argmin(-1)  # [S, H]
            onehot = torch.nn.functional.one_hot(idx, 3).float()
            probs = (weights[:, None, None] * onehot).sum(0)
        return mean, std, probs

    def _floor_probs(self, probs: torch.Tensor) -> torch.Tensor:
        probs = probs.clamp(min=self.min_gripper_prob)
        return probs / probs.sum(-1, keepdim=True)

    def _solution(self, mean: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """The plan: the mean, with the most likely gripper command."""
        actions = mean.clone()
        if self.gripper_dim is not None:
            actions[:, self.gripper_dim] = self.gripper_values[probs.argmax(-1)]
        return self._clip(actions)


class IterativeSamplingPlanner(SamplingPlanner):
    """Sample, score, refit the distribution to weighted candidates, repeat `iterations` times;
    return the mean. The refit keeps `momentum` of the old mean/std/gripper probabilities and a std
    floor `min_std` (fraction of the half range). Subclasses choose the candidate weights.

    `keep_best`: score the warm start (the shifted previous plan) first and return the best candidate
    scored instead of the mean, so a good plan is kept until a better one is found (for multimodal
    searches, where the mean of elites can be none of them, and for following a given plan)."""

    def __init__(self, action_low, action_high, iterations: int = 10, momentum: float = 0.15, min_std: float = 0.05,
                 keep_best: bool = False, **kwargs):
        super().__init__(action_low, action_high, **kwargs)
        if iterations < 1 or not 0 <= momentum < 1:
            raise ValueError(f"need iterations >= 1 and 0 <= momentum < 1, got {iterations}, {momentum}")
        self.iterations = iterations
        self.momentum = momentum
        self.min_std = min_std
        self.keep_best = keep_best
        self._best: tuple[float, torch.Tensor | None] = (float("inf"), None)

    def _evaluate(self, world_model, z_now, state_now, z_goal, actions):
        energies = super()._evaluate(world_model, z_now, state_now, z_goal, actions)
        i = int(energies.argmin())
        if self.keep_best and float(energies[i]) < self._best[0]:
            self._best = (float(energies[i]), actions[i].clone())
        return energies

    def _weights(self, energies: torch.Tensor) -> torch.Tensor:
        """Non-negative weights [S] summing to 1 from energies [S] (+inf for skipped candidates)."""
        raise NotImplementedError

    def _optimize(self, world_model: WorldModel, z_now, state_now, z_goal) -> torch.Tensor:
        self._best = (float("inf"), None)
        mean, std, probs = self._initial()
        if self.keep_best:
            self._evaluate(world_model, z_now, state_now, z_goal, self._clip(mean)[None])
        m = self.momentum
        for _ in range(self.iterations):
            actions = self._sample(mean, std, probs)
            energies = self._evaluate(world_model, z_now, state_now, z_goal, actions)
            new_mean, new_std, new_probs = self._fit(actions, self._weights(energies))
            mean = m * mean + (1 - m) * new_mean
            std = torch.maximum(m * std + (1 - m) * new_std, self.min_std * self.half_range)
            probs = self._floor_probs(m * probs + (1 - m) * new_probs)
        return self._best[1] if self.keep_best else self._solution(mean, probs)


class CEM(IterativeSamplingPlanner):
    """Cross-entropy method (the V-JEPA 2-AC planner): refit to the `num_elites` lowest-energy
    candidates, equally weighted."""

    def __init__(self, action_low, action_high, num_elites: int = 10, **kwargs):
        super().__init__(action_low, action_high, **kwargs)
        if not 1 <= num_elites <= self.num_samples:
            raise ValueError(f"num_elites must be in [1, num_samples={self.num_samples}], got {num_elites}")
        self.num_elites = num_elites

    def _weights(self, energies: torch.Tensor) -> torch.Tensor:
        k = min(self.num_elites, int(torch.isfinite(energies).sum()))
        weights = torch.zeros_like(energies)
        weights[energies.topk(k, largest=False).indices] = 1 / k
        return weights


class MPPI(IterativeSamplingPlanner):
    """Model-predictive path integral: refit to all candidates weighted by
    exp(-(E - E_min) / (temperature * (E_max - E_min))), so `temperature` does not depend on the
    energy's scale (small: close to the best candidate; large: close to the plain average)."""

    def __init__(self, action_low, action_high, temperature: float = 0.05, **kwargs):
        super().__init__(action_low, action_high, **kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def _weights(self, energies: torch.Tensor) -> torch.Tensor:
        finite = energies[torch.isfinite(energies)]
        spread = (finite.max() - finite.min()).clamp(min=1e-12)
        return torch.softmax(-(energies - finite.min()) / (self.temperature * spread), dim=0)


class RandomShooting(SamplingPlanner):
    """Baseline: `num_samples` sequences uniform within the bounds, one rollout call, keep the best."""

    def _optimize(self, world_model: WorldModel, z_now, state_now, z_goal) -> torch.Tensor:
        actions = self._sample_uniform()
        energies = self._evaluate(world_model, z_now, state_now, z_goal, actions)
        return actions[energies.argmin()]
