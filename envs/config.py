"""Task configurations: envs/configs/env/base.yaml merged with envs/configs/env/<task>.yaml.

The YAML files are the single source of defaults; the env takes every key as a keyword argument,
so ``gymnasium.make("vjepa_ac/Grasp-v0", resolution=256)`` and a Hydra ``env=grasp`` group agree.
They are package data (an installed package builds envs without a checkout), and the Hydra apps
find the ``env`` group through ``hydra.searchpath: [pkg://envs.configs]``.
"""

from importlib.resources import files
from typing import Any

from omegaconf import OmegaConf

CONFIG_DIR = files("envs") / "configs" / "env"

# task name (config file stem) -> gymnasium id
TASK_IDS = {
    "reach": "vjepa_ac/Reach-v0",
    "grasp": "vjepa_ac/Grasp-v0",
    "reach_with_object": "vjepa_ac/ReachWithObject-v0",
    "pick_place": "vjepa_ac/PickPlace-v0",
}
# Meta-World: any MT1 task, named "metaworld-<MT1 name>" (e.g. metaworld-pick-place-v3), one env id and
# one config file (configs/env/metaworld.yaml) for all of them (envs/metaworld.py)
METAWORLD_PREFIX = "metaworld-"
METAWORLD_ID = "vjepa_ac/MetaWorld-v0"
# OGBench: its visual single-cube task, named "ogbench-<OGBench env id>" (ogbench-visual-cube-single-v0), one env
# id and one config file (configs/env/ogbench.yaml) (envs/ogbench.py)
OGBENCH_PREFIX = "ogbench-"
OGBENCH_ID = "vjepa_ac/OGBench-v0"
BENCHMARK_PREFIXES = {METAWORLD_PREFIX: "metaworld", OGBENCH_PREFIX: "ogbench"}   # task-name prefix -> config stem


def config_name(task: str) -> str:
    """The config file stem of `task`; unknown names fail listing the valid ones."""
    for prefix, name in BENCHMARK_PREFIXES.items():
        if task.startswith(prefix) and len(task) > len(prefix):
            return name
    if task not in TASK_IDS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {sorted(TASK_IDS)}, {METAWORLD_PREFIX}<Meta-World "
                         f"MT1 task name> or {OGBENCH_PREFIX}<OGBench env id>")
    return task


def _load_yaml(name: str) -> dict:
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"env config {path} not found (an incomplete install of the envs package?)")
    return OmegaConf.to_container(OmegaConf.create(path.read_text()), resolve=True)


def load_task_config(task: str, **overrides: Any) -> dict:
    """Defaults of ``task`` from YAML, with ``overrides`` applied; unknown names fail listing the valid ones."""
    task_cfg = _load_yaml(config_name(task))
    cfg = {}
    for parent in task_cfg.pop("defaults", []):
        if parent != "_self_":
            cfg.update(_load_yaml(parent))
    cfg.update(task_cfg, task=task)
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:
        raise ValueError(f"unknown env config keys {unknown} for task {task!r}; valid keys: {sorted(cfg)}")
    if overrides.get("task", task) != task:
        raise ValueError(f"config says task={overrides['task']!r} but the env is {task!r}")
    cfg.update(overrides)
    return cfg
