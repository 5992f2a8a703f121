"""Building what a method needs from configuration: its world model, its planner and its goal mode.

A *method* (configs/benchmark.yaml `methods`, or the one cell of configs/plan.yaml) is a dict with
a `kind`:
  random   uniformly random actions within the bounds
  expert   the scripted expert (PRIVILEGED: reads the simulator state); `noise` on its actions
  planner  `planner` (a configs/planner/*.yaml dict) over `world_model`: a checkpoint directory
           (learned: pixels + proprioception only), a mapping of camera views to checkpoint
           directories ({pixels: ..., wrist_pixels: ...}: `planners.views`), or "oracle"
           (PRIVILEGED: the simulator)
and optionally `goals` ("final": plan toward the goal image; "subgoals": toward the env's subgoal
images in turn, then the goal), `execute_steps` (actions executed per plan) and `env` (env config
overrides for this method's cells, e.g. {wrist_camera: true} for a wrist view). Scripts and the
benchmark build every method here and nowhere else.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Callable

import numpy as np

from planners.base import Planner
from planners.gradient import GradientPlanner
from planners.oracle import PrivilegedOracleWorldModel
from planners.policy import NullWorldModel, PolicyPlanner, RandomActions
from planners.protocol import WorldModel
from planners.sampling import CEM, MPPI, RandomShooting
from planners.subgoals import SubgoalSwitch
from planners.views import MultiViewWorldModel

PLANNERS = {"cem": CEM, "mppi": MPPI, "random_shooting": RandomShooting, "gradient": GradientPlanner}
METHOD_KINDS = ("random", "expert", "planner")
GOAL_MODES = ("final", "subgoals")
ORACLE = "oracle"


def make_planner(cfg: Mapping, action_space) -> Planner:
    """A planner from a config with `name` (one of PLANNERS) and its keyword arguments; the action
    bounds come from the env's `action_space` (a gymnasium Box)."""
    kwargs = dict(cfg)
    name = kwargs.pop("name", None)
    if name not in PLANNERS:
        raise ValueError(f"planner name {name!r} is not one of {sorted(PLANNERS)}")
    try:
        return PLANNERS[name](action_space.low, action_space.high, **kwargs)
    except TypeError as error:  # an unknown or misspelt key
        raise ValueError(f"bad planner config for {name!r} ({PLANNERS[name].__name__}): {error}") from None


def load_world_model(source: str | Mapping[str, str], env=None, device: str = "cpu") -> WorldModel:
    """`source` is a checkpoint directory (the learned world model), a mapping of observation keys
    (camera views) to checkpoint directories, or "oracle" (PRIVILEGED: the env's simulator as the
    world model)."""
    if isinstance(source, Mapping):
        return MultiViewWorldModel({view: load_world_model(path, env, device) for view, path in source.items()})
    if source == ORACLE:
        if env is None:
            raise ValueError("the privileged oracle world model needs the env")
        return PrivilegedOracleWorldModel(env)
    if not Path(source).exists():
        raise FileNotFoundError(f"world model checkpoint directory {source!r} does not exist "
                                f"(the shipped one is checkpoints/vjepa_ac_tiny; or use '{ORACLE}')")
    from vjepa_ac import WorldModel as LearnedWorldModel

    return LearnedWorldModel.from_checkpoint(source, device=device).eval()


def is_privileged(method: Mapping) -> bool:
    """Does the method read simulator state (the expert, or a planner over the oracle)?"""
    return method["kind"] == "expert" or (method["kind"] == "planner" and method["world_model"] == ORACLE)


def check_method(name: str, method: Mapping) -> None:
    """Fail before any episode runs, naming the bad key; loads a learned checkpoint to check it."""
    if method.get("kind") not in METHOD_KINDS:
        raise ValueError(f"methods.{name}.kind must be one of {METHOD_KINDS}, got {method.get('kind')!r}")
    if method.get("goals", "final") not in GOAL_MODES:
        raise ValueError(f"methods.{name}.goals must be one of {GOAL_MODES}, got {method['goals']!r}")
    if method["kind"] == "planner" and method.get("world_model") != ORACLE:
        source = method.get("world_model")
        try:
            load_world_model(source if isinstance(source, Mapping) else str(source))
        except (OSError, ValueError, KeyError) as error:
            raise type(error)(f"methods.{name}.world_model: {error}") from None


def method_subgoals(method: Mapping, switch: Mapping) -> SubgoalSwitch | None:
    """The subgoal switch (from the `subgoal_switch` config) if the method plans through subgoals."""
    return SubgoalSwitch(**switch) if method.get("goals", "final") == "subgoals" else None


def build_method(method: Mapping, env, make_expert: Callable, device: str = "cpu") -> tuple[WorldModel, Planner]:
    """The world model and planner of a method on `env` (`make_expert(env, noise=, rng=)` builds
    the scripted expert; `planners` does not import `envs`)."""
    low, high = env.action_space.low, env.action_space.high
    if method["kind"] == "random":
        return NullWorldModel(), RandomActions(low, high)
    if method["kind"] == "expert":
        noise = method.get("noise", 0.0)
        return NullWorldModel(privileged=True), PolicyPlanner(
            low, high, lambda: make_expert(env, noise=noise, rng=np.random.default_rng(0)).act)
    return load_world_model(method["world_model"], env, device), make_planner(method["planner"], env.action_space)
