"""MuJoCo table-top manipulation envs (a Panda-like arm, four tasks) and their scripted experts.

``import envs`` registers ``vjepa_ac/{Reach,Grasp,ReachWithObject,PickPlace}-v0`` with gymnasium.
"""

from envs.rendering import select_gl_backend

select_gl_backend()   # before anything imports mujoco

import gymnasium  # noqa: E402

from envs.config import METAWORLD_ID, OGBENCH_ID, TASK_IDS, config_name, load_task_config  # noqa: E402
from envs.experts import (ExpertWithDetour, ExpertWithMistakes, ExpertWithRandomSteps, PolicyExpert,  # noqa: E402
                          ScriptedExpert, make_expert)
from envs.manipulation import ManipulationEnv  # noqa: E402

for _task, _env_id in TASK_IDS.items():
    if _env_id not in gymnasium.registry:
        gymnasium.register(id=_env_id, entry_point="envs.manipulation:ManipulationEnv", kwargs={"task": _task})
if METAWORLD_ID not in gymnasium.registry:
    gymnasium.register(id=METAWORLD_ID, entry_point="envs.metaworld:MetaWorldEnv")
if OGBENCH_ID not in gymnasium.registry:
    gymnasium.register(id=OGBENCH_ID, entry_point="envs.ogbench:OGBenchEnv")
BENCHMARK_IDS = {"metaworld": METAWORLD_ID, "ogbench": OGBENCH_ID}   # config stem -> gymnasium id


def make_env(task: str, **config) -> gymnasium.Env:
    """``gymnasium.make`` by task name (a configs/env/*.yaml stem, ``metaworld-<MT1 task name>`` or
    ``ogbench-<OGBench env id>``) with config overrides."""
    name = config_name(task)
    if name in BENCHMARK_IDS:
        return gymnasium.make(BENCHMARK_IDS[name], task=task, **config)
    return gymnasium.make(TASK_IDS[task], **config)


__all__ = ["TASK_IDS", "ExpertWithDetour", "ExpertWithMistakes", "ExpertWithRandomSteps", "ManipulationEnv",
           "PolicyExpert", "ScriptedExpert", "load_task_config", "make_env", "make_expert"]
