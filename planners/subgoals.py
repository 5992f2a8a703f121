"""When the MPC loop moves from one goal image to the next (subgoal-conditioned MPC).

A task may come with an ordered list of subgoal images before its final goal image (V-JEPA 2-AC
plans pick-and-place through sub-goal images on a fixed timer). The switch decides from what the
planner itself sees, never from the env's success flag or simulator state:

  schedule  a fixed number of env steps per subgoal (the reference's way)
  energy    when the current frame's energy to the subgoal falls below `threshold` times its
            energy when that subgoal became current, or has not improved on its best by a
            fraction `min_improvement` for `patience` plans (a plateau: the subgoal is as reached as
            the planner can make it)

With `gripper_tolerance`, a subgoal is never left while the robot's measured gripper closure
disagrees with the closure the planner reads from the subgoal image (`Planner.gripper_reached`):
the energy can plateau with the fingers at the object but still open, and moving on then lifts
an empty gripper. The final goal is never left.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

SWITCH_MODES = ("schedule", "energy")


@dataclass
class SubgoalSwitch:
    mode: str = "energy"
    steps: Sequence[int] = ()  # schedule: env steps on each subgoal, in order
    threshold: float = 0.2  # energy: reached below this fraction of the subgoal's starting energy
    patience: int = 3  # energy: plans without improvement before moving on
    min_improvement: float = 0.05  # energy: relative improvement that counts
    gripper_tolerance: float | None = None  # stay while the measured closure is farther than this from the goal's

    def __post_init__(self):
        if self.mode not in SWITCH_MODES:
            raise ValueError(f"subgoal switch mode must be one of {SWITCH_MODES}, got {self.mode!r}")
        if self.mode == "schedule" and (not self.steps or min(self.steps) < 1):
            raise ValueError(f"the schedule switch needs steps >= 1 per subgoal, got {list(self.steps)}")
        if not 0 <= self.threshold < 1 or self.patience < 1 or self.min_improvement < 0:
            raise ValueError(f"need 0 <= threshold < 1, patience >= 1, min_improvement >= 0; got "
                             f"{self.threshold}, {self.patience}, {self.min_improvement}")
        if self.gripper_tolerance is not None and not 0 < self.gripper_tolerance < 1:
            raise ValueError(f"gripper_tolerance must be in (0, 1) or null, got {self.gripper_tolerance}")


@dataclass
class GoalTracker:
    """Which of `num_goals` goals (subgoals first, final goal last) the planner aims at."""

    switch: SubgoalSwitch
    num_goals: int
    index: int = 0
    switched_at: list[int] = field(default_factory=list)  # env step of each switch
    _start_step: int = 0
    _start_energy: float | None = None
    _best: float = float("inf")
    _stale: int = 0

    def __post_init__(self):
        num_subgoals = self.num_goals - 1
        if self.switch.mode == "schedule" and len(self.switch.steps) < num_subgoals:
            raise ValueError(f"the schedule gives steps for {len(self.switch.steps)} subgoals but the task has "
                             f"{num_subgoals}")

    @property
    def on_final(self) -> bool:
        return self.index == self.num_goals - 1

    def update(self, step: int, energy_now: float, gripper_reached: bool = True) -> bool:
        """Called before each plan with the env step, the current frame's energy to the current goal and
        whether the gripper agrees with it (read only with `gripper_tolerance`); returns True when the
        planner should aim at the next goal from now on."""
        if self.on_final:
            return False
        if self._start_energy is None:
            self._start_energy = energy_now
        if self.switch.mode == "schedule":
            done = step - self._start_step >= self.switch.steps[self.index]
        else:
            if energy_now < self._best * (1 - self.switch.min_improvement):
                self._best, self._stale = energy_now, 0
            else:
                self._stale += 1
            done = energy_now <= self.switch.threshold * self._start_energy or self._stale >= self.switch.patience
        if self.switch.gripper_tolerance is not None:
            done = done and gripper_reached
        if done:
            self.index += 1
            self.switched_at.append(step)
            self._start_step, self._start_energy, self._best, self._stale = step, None, float("inf"), 0
        return done
