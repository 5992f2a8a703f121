"""Building planners and world models from configuration (Hydra configs/planner/*.yaml, plan.yaml)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from planners.base import Planner
from planners.gradient import GradientPlanner
from planners.oracle import PrivilegedOracleWorldModel
from planners.protocol import WorldModel
from planners.sampling import CEM, MPPI, RandomShooting

PLANNERS = {"cem": CEM, "mppi": MPPI, "random_shooting": RandomShooting, "gradient": GradientPlanner}


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


def load_world_model(source: str, env=None, random_spec: Mapping | None = None) -> WorldModel:
    """`source` is a checkpoint directory (the learned world model), "oracle" (PRIVILEGED: the
    env's simulator as the world model) or "random" (untrained weights of `random_spec`'s sizes,
    for timing only)."""
    if source == "oracle":
        if env is None:
            raise ValueError("the privileged oracle world model needs the env")
        return PrivilegedOracleWorldModel(env)
    from vjepa_ac import WorldModel as LearnedWorldModel

    if source == "random":
        if random_spec is None:
            raise ValueError("world_model=random needs a spec of the model sizes")
        return LearnedWorldModel.from_config(dict(random_spec)).eval()
    if not Path(source).is_dir():
        raise FileNotFoundError(f"world model checkpoint directory {source!r} not found (or use 'oracle' / 'random')")
    return LearnedWorldModel.from_checkpoint(source).eval()
