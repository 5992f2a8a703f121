"""Benchmark tasks x methods x seeded episodes and print the table (configs/benchmark.yaml).

Writes <output_dir>/results.json, results.md, success.png, videos/ and episodes/ (one JSON per
episode; a re-run skips finished ones)."""
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import envs
from planners.benchmark import run_benchmark, summary_table

log = logging.getLogger("benchmark")


@hydra.main(config_path="../configs", config_name="benchmark", version_base=None)
def main(cfg: DictConfig) -> None:
    out = Path(cfg.output_dir)
    results = run_benchmark(OmegaConf.to_container(cfg, resolve=True), out, envs.make_env, envs.make_expert)
    log.info("results in %s (results.json, results.md, success.png, videos/)", out)
    print(f"\nSuccess at the end of the budget, seeds {cfg.seed}-{cfg.seed + cfg.episodes - 1}, 95 % Wilson "
          f"interval (successes/episodes):\n\n{summary_table(results)}")
    print(f"Every cell (timings, distances): {out / 'results.md'}; plot: {out / 'success.png'}")
    print(f"Videos (camera | the goal it plans toward, and an energy plot): {out / 'videos'}/")


if __name__ == "__main__":
    main()
