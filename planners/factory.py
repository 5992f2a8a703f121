"""Building what a method needs from configuration: its world model, its planner and its goal mode.

A *method* (configs/benchmark.yaml `methods`, or the one cell of configs/plan.yaml) is a dict with
a `kind`:
  random   uniformly random actions within the bounds
  expert   the scripted expert (PRIVILEGED: reads the simulator state); `noise` on its actions
  planner  `planner` (a configs/planner/*.yaml dict) over `world_model`: a checkpoint directory
           (learned: pixels + proprioception only), a mapping of camera views to checkpoint
           directories ({pixels: ..., wrist_pixels: ...}, or per view {checkpoint, energy_weight,
           state_dims}: `planners.views`), or "oracle"
           (PRIVILEGED: the simulator)
and optionally `goals` ("final": plan toward the goal image; "subgoals": toward the env's subgoal
images in turn, then the goal), `execute_steps` (actions executed per plan), `env` (env config
overrides for this method's cells, e.g. {wrist_camera: true} for a wrist view) and `high_level`
(two-level planning from the single goal image, `planners.hierarchical`): {world_model: a checkpoint
fine-tuned with data.reader.frame_stride = macro_steps, or "oracle" (PRIVILEGED: the simulator
playing each macro-action step by step), macro_steps, planner (over macro-actions), reached_fraction};
`planner` is then the low level. With `high_level.planner: null` there is no high-level search: the
high-level world model is a checkpoint with a subgoal prior (scripts/train_subgoal_prior.py) that
proposes the next state every macro_steps control steps; for "oracle", `prior` names the privileged
prior's checkpoint (trained on the logs' environment state). A method with `like: <other method>` is
that method with its own keys merged over it (dicts key by key: `resolve_methods`), so an ablation
names only what it changes. Scripts and the benchmark build every method here and nowhere else.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np

from planners.base import Planner
from planners.gradient import GradientPlanner
from planners.hierarchical import HierarchicalPlanner, MacroActions, PrimitiveCEM, macro_bounds
from planners.oracle import OracleSubgoalPrior, PrivilegedOracleWorldModel
from planners.policy import NullWorldModel, PolicyPlanner, RandomActions
from planners.protocol import WorldModel
from planners.sampling import CEM, MPPI, RandomShooting
from planners.subgoals import SubgoalSwitch
from planners.views import MultiViewWorldModel

PLANNERS = {"cem": CEM, "mppi": MPPI, "random_shooting": RandomShooting, "gradient": GradientPlanner,
            "primitive_cem": PrimitiveCEM}
METHOD_KINDS = ("random", "expert", "planner")
GOAL_MODES = ("final", "subgoals")
ORACLE = "oracle"
VIEW_KEYS = {"checkpoint", "energy_weight", "state_dims"}  # a camera view of a multi-view world model


def make_planner(cfg: Mapping, action_space) -> Planner:
    """A planner from a config with `name` (one of PLANNERS) and its keyword arguments; the action
    bounds come from `action_space` (the env's gymnasium Box, or anything with `low` and `high`)."""
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
    (camera views) to checkpoint directories or to {checkpoint, energy_weight, state_dims}
    (`planners.views.MultiViewWorldModel`), or "oracle" (PRIVILEGED: the env's simulator as the
    world model)."""
    if isinstance(source, Mapping):
        views = {view: spec if isinstance(spec, Mapping) else {"checkpoint": spec} for view, spec in source.items()}
        for view, spec in views.items():
            unknown = sorted(set(spec) - VIEW_KEYS)
            if unknown or "checkpoint" not in spec:
                raise ValueError(f"world_model.{view} must be a checkpoint directory or a mapping with 'checkpoint' "
                                 f"and optionally {sorted(VIEW_KEYS - {'checkpoint'})}; got keys {sorted(spec)}")
        return MultiViewWorldModel(
            {view: load_world_model(spec["checkpoint"], env, device) for view, spec in views.items()},
            energy_weights={view: spec["energy_weight"] for view, spec in views.items() if "energy_weight" in spec},
            state_dims={view: spec["state_dims"] for view, spec in views.items() if "state_dims" in spec})
    if source == ORACLE:
        if env is None:
            raise ValueError("the privileged oracle world model needs the env")
        return PrivilegedOracleWorldModel(env)
    if not Path(source).exists():
        raise FileNotFoundError(f"world model checkpoint directory {source!r} does not exist "
                                f"(the shipped one is checkpoints/vjepa_ac_tiny; or use '{ORACLE}')")
    from vjepa_ac import WorldModel as LearnedWorldModel

    return LearnedWorldModel.from_checkpoint(source, device=device).eval()


def merged(base: Mapping, override: Mapping) -> dict:
    """`base` with `override`'s keys over it; where both hold a dict, they merge key by key."""
    out = dict(base)
    for key, value in override.items():
        both_dicts = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = merged(out[key], value) if both_dicts else value
    return out


def resolve_methods(methods: Mapping[str, Mapping]) -> dict[str, dict]:
    """Every method with its `like: <other method>` chain merged in (`merged`), failing on an unknown
    name or a cycle. Interpolations were resolved where they are written, before this."""
    def resolve(name: str, chain: tuple[str, ...]) -> dict:
        if name in chain:
            raise ValueError(f"methods.{chain[0]}: `like` loops through {' -> '.join((*chain, name))}")
        method = dict(methods[name])
        base = method.pop("like", None)
        if base is None:
            return method
        if base not in methods:
            raise ValueError(f"methods.{name}.like names {base!r}, not one of methods {sorted(methods)}")
        return merged(resolve(base, (*chain, name)), method)

    return {name: resolve(name, ()) for name in methods}


def is_privileged(method: Mapping) -> bool:
    """Does the method read simulator state (the expert, or a planner over the oracle at either level)?"""
    if method["kind"] == "expert":
        return True
    high_level = method.get("high_level") or {}
    return method["kind"] == "planner" and ORACLE in (method["world_model"], high_level.get("world_model"))


def predicts_latents(method: Mapping) -> bool:
    """Does the method's energy depend on latents its world model predicts? False for a learned planner
    with `latent_weight: 0` (its energy is the state term on `state + actions`, the predictor is never
    called): a baseline of the world model, labelled as such like a privileged one."""
    return method["kind"] == "planner" and (method.get("planner") or {}).get("latent_weight", 1.0) > 0


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
    if method.get("high_level") is not None:
        if method.get("goals", "final") != "final":
            raise ValueError(f"methods.{name}: high_level plans from the single goal image; goals must be 'final'")
        missing = [key for key in ("world_model", "macro_steps", "planner") if key not in method["high_level"]]
        if missing:
            raise ValueError(f"methods.{name}.high_level lacks {missing}")
        high_level = method["high_level"]
        if high_level["world_model"] == ORACLE and follows_prior(high_level):
            try:
                load_oracle_prior(high_level)
            except (OSError, ValueError, KeyError) as error:
                raise type(error)(f"methods.{name}.high_level.prior: {error}") from None
        elif high_level["world_model"] != ORACLE:
            try:
                load_high_level_model(high_level)
            except (OSError, ValueError, KeyError) as error:
                raise type(error)(f"methods.{name}.high_level.world_model: {error}") from None


def method_subgoals(method: Mapping, switch: Mapping) -> SubgoalSwitch | None:
    """The subgoal switch if the method plans through subgoals: the `subgoal_switch` config with the
    method's own `subgoal_switch` entries over it."""
    if method.get("goals", "final") != "subgoals":
        return None
    return SubgoalSwitch(**{**switch, **(method.get("subgoal_switch") or {})})


def follows_prior(high_level: Mapping) -> bool:
    """Whether a `high_level` block has no search (`planner: null`): its model's subgoal prior proposes."""
    return "planner" in high_level and high_level["planner"] is None


def load_oracle_prior(high_level: Mapping):
    """The privileged subgoal prior an oracle high level without a search follows (`high_level.prior`)."""
    if not high_level.get("prior"):
        raise ValueError("an oracle high level without a search needs `prior`: a subgoal prior checkpoint "
                         "trained on the logs' environment state (configs/train_subgoal_prior.yaml)")
    from vjepa_ac.models.subgoal_prior import load_subgoal_prior

    return load_subgoal_prior(high_level["prior"])


def load_high_level_model(high_level: Mapping, env=None, device: str = "cpu") -> WorldModel:
    """The high-level world model over macro-actions of `macro_steps` control steps: the oracle
    playing them step by step, or a learned checkpoint fine-tuned on frames `macro_steps` apart."""
    k = int(high_level["macro_steps"])
    model = load_world_model(high_level["world_model"], env, device)
    if high_level["world_model"] == ORACLE:
        if follows_prior(high_level):
            return OracleSubgoalPrior(load_oracle_prior(high_level), model.action_dim)
        return MacroActions(model, k)
    if follows_prior(high_level):  # proposes states, never rolled out over macro-actions
        return model
    if model.frame_stride != k:
        raise ValueError(f"{high_level['world_model']} predicts {model.frame_stride} control step(s) ahead "
                         f"(data.reader.frame_stride), but macro_steps is {k}")
    return model


def hierarchical_planner(high_level: Mapping, low: Planner, env, device: str = "cpu") -> HierarchicalPlanner:
    """The two-level planner of a method's `high_level` block over the low-level planner `low` (no
    high-level search when its `planner` is null: the high-level model's subgoal prior proposes)."""
    k = int(high_level["macro_steps"])
    macro_low, macro_high = macro_bounds(env.action_space.low, env.action_space.high, k)
    high = None if follows_prior(high_level) else make_planner(
        high_level["planner"], SimpleNamespace(low=macro_low.numpy(), high=macro_high.numpy()))
    return HierarchicalPlanner(low, high, load_high_level_model(high_level, env, device), k,
                               reached_fraction=high_level.get("reached_fraction", 0.2),
                               low_goal=high_level.get("low_goal", "subgoal"))


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
    world_model = load_world_model(method["world_model"], env, device)
    planner = make_planner(method["planner"], env.action_space)
    if method.get("high_level") is not None:
        planner = hierarchical_planner(method["high_level"], planner, env, device)
        from vjepa_ac import WorldModel as LearnedWorldModel

        learned = [m for m in (world_model, planner.high_model) if isinstance(m, LearnedWorldModel)]
        if len(learned) == 2 and not world_model.shares_encoder(planner.high_model):
            raise ValueError(f"the high-level model {method['high_level']['world_model']} and the low-level model "
                             f"{method['world_model']} have different encoders: its subgoal latents would be meaningless")
    return world_model, planner
