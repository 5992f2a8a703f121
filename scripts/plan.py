"""Plan toward a goal image with MPC: a one-cell benchmark (one task, one planner method) that
writes videos and energy plots and prints success and planning time (configs/plan.yaml)."""
import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

import envs
from planners.benchmark import plan_config, run_benchmark

log = logging.getLogger("plan")


@hydra.main(config_path="../configs", config_name="plan", version_base=None)
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(cfg.threads)
    results = run_benchmark(plan_config(OmegaConf.to_container(cfg, resolve=True)), Path(cfg.output_dir),
                            envs.make_env, envs.make_expert)
    cell = results["cells"][0]
    split = cell["plan_s_split_mean"]
    log.info("%s, %s: success at end %.0f %% of %d, at any step %.0f %%; planning %.3f s/action (encode %.3f, "
             "rollouts %.3f, overhead %.3f); outputs in %s", cell["task"], cell["method"] + (" (PRIVILEGED)" if cell["privileged"] else ""),
             100 * cell["success"], cell["episodes"], 100 * cell["success_any"], sum(split.values()),
             split["encode_s"], split["rollout_s"], split["overhead_s"], cfg.output_dir)


if __name__ == "__main__":
    main()
