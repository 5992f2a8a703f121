"""Pretraining's data-loading rate without a model (configs/loader_speed.yaml): clips/s from the DataLoader.

    python scripts/loader_speed.py data.root=data/videos data.num_workers=2

Three variants, `epochs` passes each over the same clips and batches:
  before      a new DataLoader (fresh workers) every epoch, every clip decoded from its H.264 file
  persistent  one DataLoader whose workers persist, every clip decoded from its file
  after       one persistent DataLoader, clips read from the decoded-frame cache (pretraining's default)
"""

import time

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from vjepa_ac.pretrain import build_dataset
from vjepa_ac.train_loop import make_loader
from vjepa_ac.training import ResumableSampler


def clips_per_second(dataset: Dataset, cfg: DictConfig, persistent: bool) -> float:
    sampler = ResumableSampler(len(dataset), seed=cfg.seed)

    def loader():
        return make_loader(dataset, sampler, cfg.train.batch_size, cfg.data.num_workers, torch.device("cpu"),
                           seed=cfg.seed)

    one = loader() if persistent else None
    clips, start = 0, time.perf_counter()
    for epoch in range(cfg.epochs):
        sampler.set_epoch(epoch)
        for batch in one or loader():
            clips += len(batch)
    return clips / (time.perf_counter() - start)


@hydra.main(config_path="../configs", config_name="loader_speed", version_base=None)
def main(cfg: DictConfig) -> None:
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    decoding = build_dataset(OmegaConf.merge(cfg, {"data": {"frame_cache": None}}))
    start = time.perf_counter()
    cached = build_dataset(cfg)
    build_s = time.perf_counter() - start
    rows = [("before: a new loader every epoch, clips decoded from their files", decoding, False),
            ("one persistent loader, clips decoded from their files", decoding, True),
            ("after: one persistent loader, decoded-frame cache", cached, True)]
    rates = [(name, clips_per_second(dataset, cfg, persistent)) for name, dataset, persistent in rows]
    print(f"\n{len(decoding)} clips of {len(decoding.videos)} videos in {cfg.data.root}, "
          f"batch {cfg.train.batch_size}, {cfg.data.num_workers} workers, {cfg.epochs} epochs; "
          f"frame cache ready in {build_s:.1f} s ({cached.frame_cache.data_path})\n")
    print("| loader | clips/s |\n|---|---|")
    for name, rate in rates:
        print(f"| {name} | {rate:.0f} |")


if __name__ == "__main__":
    main()
