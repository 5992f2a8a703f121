"""Training utilities shared by pretraining and fine-tuning.

Schedules (LR warm-up + cosine, weight decay, EMA momentum), AdamW parameter groups without decay
on biases and norms, EMA update, DDP setup, a resumable epoch sampler, TensorBoard logging, the
NaN guard and the embedding-collapse monitor.
"""

from __future__ import annotations

import math
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

# ----------------------------------------------------------------------------- schedules


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, base: float, start: float = 0.0,
                  final: float = 0.0) -> float:
    """Linear warm-up from `start` to `base` over `warmup_steps`, then cosine from `base` to `final`."""
    if step < warmup_steps:
        return start + (base - start) * step / max(1, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return final + (base - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear(step: int, total_steps: int, start: float, end: float) -> float:
    """Linear ramp from `start` to `end` over `total_steps` (weight decay, EMA momentum)."""
    return start + (end - start) * min(1.0, step / max(1, total_steps))


# ----------------------------------------------------------------------------- optimisation


def adamw_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights (decayed) and biases/norms/1-D params (never decayed, even when WD is scheduled)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "apply_wd": True},
        {"params": no_decay, "weight_decay": 0.0, "apply_wd": False},
    ]


def set_hparams(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    """Set the scheduled LR on every group and the scheduled WD on the groups that take decay."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        if group.get("apply_wd", True):
            group["weight_decay"] = weight_decay


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, over all parameters."""
    online = getattr(online, "module", online)
    t = list(target.parameters())
    o = list(online.parameters())
    torch._foreach_mul_(t, momentum)
    torch._foreach_add_(t, o, alpha=1.0 - momentum)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- distributed


@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | torch.device) -> str | torch.device:
    """The `device` setting of every job: "auto" -> "cuda" when a GPU is visible, else "cpu"; a
    "cuda..." device without a GPU fails naming the setting; anything else as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={device} requested but torch.cuda.is_available() is False")
    return device


def setup_distributed(device: str = "auto") -> DistInfo:
    """Initialise DDP when launched by torchrun (WORLD_SIZE > 1): nccl on GPU, gloo on CPU.

    `device`: "auto" (cuda if available), "cpu" or "cuda".
    """
    use_cuda = str(resolve_device(device)).startswith("cuda")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world_size, local_rank, dev)


def cleanup_distributed() -> None:
    """Destroy the process group. Drop DDP wrappers first: a DDP model that outlives the group
    destroys it from its own deallocation with the GIL held, which can deadlock against gloo's
    worker thread still releasing the last all-reduce (seen in tests/test_pretrain.py's DDP test)."""
    if dist.is_initialized():
        dist.destroy_process_group()


T = TypeVar("T")


def main_first(make: Callable[[bool], T], is_main: bool) -> T:
    """`make(True)` on the main process (builds a cache), then `make(False)` (reads it) on the others."""
    if is_main:
        result = make(True)
    if dist.is_initialized():
        dist.barrier()
    if not is_main:
        result = make(False)
    return result


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over processes (identity without DDP)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        x = x.clone()
        dist.all_reduce(x)
        x /= dist.get_world_size()
    return x


class ResumableSampler(torch.utils.data.Sampler[int]):
    """Seeded shuffled indices per epoch, sharded over ranks, that can start mid-epoch.

    Every rank sees `len(self)` indices; rank r takes positions r, r + W, r + 2W, ... of the epoch's
    permutation (padded by wrapping so every rank has the same count). `set_epoch(e, skip=k)` makes
    the next iteration start after the first k indices of this rank, which is how a resumed run
    continues with exactly the batches it would have seen.
    """

    def __init__(self, num_items: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        if num_items <= 0:
            raise ValueError("ResumableSampler needs a non-empty dataset")
        self.num_items, self.seed, self.shuffle = num_items, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.per_rank = math.ceil(num_items / world_size)
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return self.per_rank - self.skip

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_items, generator=g).tolist()
        else:
            order = list(range(self.num_items))
        total = self.per_rank * self.world_size
        order = (order * math.ceil(total / self.num_items))[:total]
        mine = order[self.rank:total:self.world_size]
        return iter(mine[self.skip:])


# ----------------------------------------------------------------------------- logging and guards


class TensorBoardLogger:
    """Scalars to TensorBoard on the main process; a no-op elsewhere.

    `purge_step`: the first step this run logs; TensorBoard hides what earlier runs in `log_dir`
    logged at or after it (a resumed run logs those steps again).
    """

    def __init__(self, log_dir: str | Path, enabled: bool = True, purge_step: int | None = None):
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept untouched."""


def check_finite(loss: torch.Tensor, step: int, batch_info: str, last_checkpoint: str | Path | None) -> None:
    """Raise `NonFiniteLossError` naming the step, the batch and the last good checkpoint."""
    if not torch.isfinite(loss).all():
        kept = f"last good checkpoint kept at {last_checkpoint}" if last_checkpoint else "no checkpoint written yet"
        raise NonFiniteLossError(f"non-finite loss {loss.item()} at step {step} ({batch_info}); stopping, {kept}")


@torch.no_grad()
def embedding_stats(z: torch.Tensor) -> tuple[float, float]:
    """Collapse indicators of embeddings `z [B, ..., D]`, pooled over tokens to `[B, D]`.

    Returns (mean over dims of the std across the batch, effective rank = exp(entropy of the
    normalised singular values), RankMe). Both fall towards 0 / 1 when representations collapse.
    """
    z = z.float().reshape(z.shape[0], -1, z.shape[-1]).mean(1)
    std = z.std(0).mean().item() if z.shape[0] > 1 else 0.0
    s = torch.linalg.svdvals(z - z.mean(0))
    p = s / s.sum().clamp_min(1e-12)
    rank = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()).item()
    return std, rank


class CollapseMonitor:
    """Warns (once per kind) when embedding std or effective rank fall below `ratio` of their best value."""

    def __init__(self, ratio: float = 0.25, min_std: float = 1e-3):
        self.ratio, self.min_std = ratio, min_std
        self.best_std, self.best_rank = 0.0, 0.0
        self.warned: set[str] = set()

    def update(self, std: float, rank: float, step: int) -> list[str]:
        self.best_std, self.best_rank = max(self.best_std, std), max(self.best_rank, rank)
        messages = []
        if (std < self.min_std or std < self.ratio * self.best_std) and "std" not in self.warned:
            messages.append(f"step {step}: embedding std across batch fell to {std:.4g} "
                            f"(best {self.best_std:.4g}): possible representation collapse")
        if rank < self.ratio * self.best_rank and "rank" not in self.warned:
            messages.append(f"step {step}: embedding effective rank fell to {rank:.3g} "
                            f"(best {self.best_rank:.3g}): possible dimensional collapse")
        for m in messages:
            self.warned.add("std" if "std" in m else "rank")
            warnings.warn(m, RuntimeWarning, stacklevel=2)
        return messages
