"""Benchmark tasks x methods x seeded episodes and print the table (configs/benchmark.yaml).

Writes <output_dir>/results.json, results.md, success.png, videos/ and episodes/ (one JSON per
episode; a re-run skips finished ones)."""
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import envs
from planners.benchmark import run_benchmark

log = logging.getLogger("benchmark")


@hydra.main(config_path="../configs", config_name="benchmark", version_base=None)
def main(cfg: DictConfig) -> None:
    run_benchmark(OmegaConf.to_container(cfg, resolve=True), Path(cfg.output_dir), envs.make_env, envs.make_expert)
    log.info("results in %s (results.json, results.md, success.png, videos/)", cfg.output_dir)
    print((Path(cfg.output_dir) / "results.md").read_text())


if __name__ == "__main__":
    main()
