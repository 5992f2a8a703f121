"""The training loop that pretraining and fine-tuning share; each supplies only its `Objective`.

`train(cfg, make_objective)` runs, in order:
  setup     DDP when launched by torchrun, torch threads, seed, `<output_dir>/train.log` (rank 0;
            other ranks log warnings only), TensorBoard in `<output_dir>/tb`
  objective `make_objective(dist_info)`: models, optimiser, data, one step's loss, what to save
  resume    (`resume=true`) from `<output_dir>/checkpoint`, or `checkpoint.old` when a swap was
            interrupted: weights, optimiser, RNG and step, so the run continues exactly; `metrics.jsonl`
            and TensorBoard keep what was logged up to the step the run starts from (a fresh run:
            nothing), as the steps after it are run, and logged, again
  steps     LR / weight-decay schedule, loss, NaN guard, backward, gradient clipping, optimiser
            step; every `train.log_every` steps a line in the log, `metrics.jsonl` and TensorBoard
            (progress bar on rank 0); evaluation every `train.val_every`; an atomic checkpoint every
            `train.checkpoint_every` steps, at the end, and when `train.max_minutes` runs out
  teardown  the DDP wrapper goes before the process group (see `cleanup_distributed`)

Config keys read here: seed, device, threads, output_dir, resume, peak_tflops,
train.{steps, batch_size, log_every, checkpoint_every, max_minutes, val_every},
optim.{lr, start_lr, final_lr, warmup_steps, weight_decay, final_weight_decay, grad_clip}.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from vjepa_ac.checkpoint import (load_state_into, load_train_state, load_weights, remove_superseded,
                                 resolve_checkpoint, save_checkpoint, split_prefix)
from vjepa_ac.data.video_io import worker_context
from vjepa_ac.files import write_text_atomic
from vjepa_ac.training import (DistInfo, ResumableSampler, TensorBoardLogger, all_reduce_mean, check_finite,
                               cleanup_distributed, linear, seed_everything, set_hparams, setup_distributed,
                               warmup_cosine)

log = logging.getLogger(__name__)


@dataclass
class StepOutput:
    loss: torch.Tensor                 # scalar loss of this process's batch
    flops: float = 0.0                 # FLOPs of this process's step (0: not modelled, no GFLOP/s printed)
    aux: dict[str, Any] = field(default_factory=dict)  # handed to `Objective.metrics` on log steps


class Objective:
    """What a training job supplies to `train`; subclasses set these attributes in `__init__`."""

    name = "train"                     # progress-bar label
    unit = "items"                     # what one dataset item is, for the throughput figure
    bf16 = False                       # whether steps run under bf16 autocast (picks the device's peak)
    num_workers = 0                    # DataLoader worker processes
    model: nn.Module                   # the module `loss` runs; wrapped in DDP when distributed
    modules: dict[str, nn.Module]      # checkpointed under these weight prefixes
    optimizer: torch.optim.Optimizer
    dataset: Dataset
    saved_config: DictConfig           # written beside the weights

    def loss(self, model: nn.Module, batch: Any, epoch: int, index: int) -> StepOutput:
        """This process's loss on `batch`, the `index`-th batch of `epoch`."""
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        """Called after the optimiser step of `step` (counted from 0), e.g. for an EMA update."""

    def metrics(self, out: StepOutput, step: int) -> dict[str, float]:
        """Extra scalars on log steps (every process calls it: all-reduce what differs per process)."""
        return {}

    def evaluate(self) -> dict[str, float]:
        """Validation scalars, every `train.val_every` steps (every process calls it)."""
        return {}

    def load(self, checkpoint: Path) -> None:
        """Resume: load the weights of `modules` from `checkpoint`."""
        tensors = load_weights(checkpoint)
        for name, module in self.modules.items():
            load_state_into(module, split_prefix(tensors, name), source=f"{checkpoint} [{name}]")

    def run_state(self) -> dict[str, Any]:
        """JSON-serialisable run state saved with the checkpoint (e.g. monitor values)."""
        return {}

    def load_run_state(self, state: dict[str, Any]) -> None:
        """Inverse of `run_state`, on resume."""


def train(cfg: DictConfig, make_objective: Callable[[DistInfo], Objective]) -> Path:
    """Run (or resume) training as configured; returns the checkpoint directory."""
    dist_info = setup_distributed(cfg.device)
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    output_dir = Path(cfg.output_dir)
    objective = model = None
    try:
        with log_to_file(output_dir / "train.log", dist_info.is_main):
            check_loop_config(cfg, dist_info.world_size)
            log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
            seed_everything(cfg.seed)  # the same initial weights on every process
            objective = make_objective(dist_info)
            step, last_checkpoint = resume(output_dir / "checkpoint", objective) if cfg.resume else (0, None)
            if dist_info.is_main:
                truncate_metrics(output_dir / "metrics.jsonl", step)
                remove_superseded(output_dir / "checkpoint")
            model = DistributedDataParallel(objective.model) if dist_info.enabled else objective.model
            run_steps(cfg, objective, model, dist_info, step, last_checkpoint)
        if dist.is_initialized():
            dist.barrier()  # every process returns once the last checkpoint is written
        return output_dir / "checkpoint"
    except BaseException as e:
        # the frames of the traceback would keep the DDP wrapper alive past the process group
        traceback.clear_frames(e.__traceback__)
        raise
    finally:
        objective = model = None  # the DDP wrapper goes before the process group: see cleanup_distributed
        cleanup_distributed()


def check_loop_config(cfg: DictConfig, world_size: int) -> None:
    """Fail before any work, naming the offending keys."""
    t, o = cfg.train, cfg.optim
    if t.batch_size % world_size:
        raise ValueError(f"train.batch_size={t.batch_size} (global) is not divisible by the {world_size} processes")
    if o.warmup_steps > t.steps:
        raise ValueError(f"optim.warmup_steps={o.warmup_steps} exceeds train.steps={t.steps}")


def resume(checkpoint_dir: Path, objective: Objective) -> tuple[int, Path | None]:
    """Load the newest checkpoint into the objective and restore optimiser + RNG; returns (step, path)."""
    try:
        checkpoint = resolve_checkpoint(checkpoint_dir)
    except FileNotFoundError:
        log.info("resume=true but no checkpoint at %s: starting from scratch", checkpoint_dir)
        return 0, None
    objective.load(checkpoint)
    state = load_train_state(checkpoint, objective.optimizer)  # restores the RNG: nothing may draw from it now
    objective.load_run_state(state["extra"])
    log.info("resumed from %s at step %d", checkpoint, state["step"])
    return state["step"], checkpoint


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the rows of `metrics.jsonl` up to `step`, where this run starts.

    A run killed after its last checkpoint logged steps that the resumed run logs again (without this
    the file would hold them twice), and a fresh run (step 0) starts a fresh file. A line cut short
    by the kill is dropped.
    """
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # half a line: the process was killed while writing it
            continue
        if row["step"] <= step:
            kept.append(line + "\n")
    write_text_atomic(path, "".join(kept))


def run_steps(cfg: DictConfig, objective: Objective, model: nn.Module, dist_info: DistInfo, step: int,
              last_checkpoint: Path | None) -> None:
    t, o = cfg.train, cfg.optim
    output_dir, main, world = Path(cfg.output_dir), dist_info.is_main, dist_info.world_size
    per_rank = t.batch_size // world
    sampler = ResumableSampler(len(objective.dataset), seed=cfg.seed, rank=dist_info.rank, world_size=world)
    steps_per_epoch = sampler.per_rank // per_rank
    if steps_per_epoch == 0:
        raise ValueError(f"{len(objective.dataset)} {objective.unit} ({sampler.per_rank} per process) are fewer "
                         f"than a batch (train.batch_size={t.batch_size} over {world} processes)")
    # workers seeded from (seed, rank, first step): a re-run repeats itself; after a resume, clip order
    # and masks continue exactly, random crops drawn in workers do not (with num_workers=0 they use the
    # restored RNG)
    loader = make_loader(objective.dataset, sampler, per_rank, objective.num_workers, dist_info.device,
                         seed=hash((cfg.seed, dist_info.rank, step)))
    peak = device_peak_flops(cfg.get("peak_tflops"), dist_info.device, objective.bf16)
    deadline = time.monotonic() + 60 * t.max_minutes if t.get("max_minutes") else None
    val_every = t.get("val_every")
    tb = TensorBoardLogger(output_dir / "tb", enabled=main, purge_step=step + 1)  # step itself was logged
    bar = tqdm(total=t.steps, initial=step, disable=not main, desc=objective.name, dynamic_ncols=True)
    log.info("%d %s, %d steps per epoch, global batch %d over %d processes", len(objective.dataset), objective.unit,
             steps_per_epoch, t.batch_size, world)
    window_start, window_steps, window_flops = time.perf_counter(), 0, 0.0
    model.train()
    try:
        while step < t.steps:
            epoch, offset = divmod(step, steps_per_epoch)
            sampler.set_epoch(epoch, skip=offset * per_rank)
            for index, batch in enumerate(loader, start=offset):
                hp = {"lr": warmup_cosine(step, t.steps, o.warmup_steps, o.lr, o.start_lr, o.final_lr),
                      "weight_decay": linear(step, t.steps, o.weight_decay, o.final_weight_decay)}
                set_hparams(objective.optimizer, hp["lr"], hp["weight_decay"])
                out = objective.loss(model, batch, epoch, index)
                # the mean over processes is NaN if any process's is, so every process stops together
                loss = all_reduce_mean(out.loss.detach())
                where = f"epoch {epoch}, batch {index}" + (f", rank {dist_info.rank}" if dist_info.enabled else "")
                check_finite(loss, step, where, last_checkpoint)
                objective.optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(objective.model.parameters(), o.grad_clip)
                objective.optimizer.step()
                objective.after_step(step)
                step += 1
                window_steps += 1
                window_flops += out.flops * world
                bar.update(1)

                if step % t.log_every == 0 or step == t.steps:
                    elapsed = time.perf_counter() - window_start
                    scalars = {"loss": loss.item(), **hp, "grad_norm": grad_norm.item(),
                               f"throughput/{objective.unit}_per_s": window_steps * t.batch_size / elapsed}
                    if window_flops:
                        scalars["throughput/gflops_per_s"] = window_flops / elapsed / 1e9
                        if peak:
                            scalars["throughput/fraction_of_peak"] = window_flops / elapsed / (peak * world)
                    scalars.update(objective.metrics(out, step))
                    report(scalars, step, output_dir, tb, bar, main, peak)
                    window_start, window_steps, window_flops = time.perf_counter(), 0, 0.0
                if val_every and step % val_every == 0:
                    report(objective.evaluate(), step, output_dir, tb, None, main, None)
                    model.train()
                out_of_time = deadline is not None and all_reduce_mean(
                    torch.tensor(float(time.monotonic() > deadline))).item() > 0  # every process stops together
                if step % t.checkpoint_every == 0 or step == t.steps or out_of_time:
                    last_checkpoint = output_dir / "checkpoint"
                    if main:
                        save_checkpoint(last_checkpoint, objective.modules, objective.saved_config,
                                        objective.optimizer, step, extra=objective.run_state())
                        log.info("step %d: checkpoint written to %s", step, last_checkpoint)
                if out_of_time:
                    log.warning("train.max_minutes=%s reached at step %d: stopping", t.max_minutes, step)
                    return
                if step >= t.steps:
                    break
    finally:
        bar.close()
        tb.close()


def make_loader(dataset: Dataset, sampler: ResumableSampler, batch_size: int, num_workers: int,
                device: torch.device, seed: int) -> DataLoader:
    """The run's one loader: iterate it once per epoch (after `sampler.set_epoch`); its worker
    processes persist across epochs instead of starting again each time."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=num_workers,
                      persistent_workers=num_workers > 0, multiprocessing_context=worker_context(num_workers),
                      pin_memory=device.type == "cuda",
                      generator=torch.Generator().manual_seed(seed))


def report(scalars: dict[str, float], step: int, output_dir: Path, tb: TensorBoardLogger, bar: tqdm | None,
           main: bool, peak: float | None) -> None:
    """Scalars to TensorBoard, `metrics.jsonl`, the log and the progress bar (rank 0)."""
    if not main or not scalars:
        return
    tb.scalars(scalars, step)
    with open(output_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": step, **scalars}) + "\n")
    line = " ".join(f"{k} {v:.4g}" for k, v in scalars.items())
    if peak:
        line += f" (device peak {peak / 1e12:.0f} TFLOP/s)"
    log.info("step %d %s", step, line)
    if bar is not None:
        bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in scalars.items() if k == "loss" or "per_s" in k})


# Dense peak TFLOP/s (bf16, fp32) of accelerators people train on; the first name contained in the
# device's name wins. Anything else: set peak_tflops, or no utilisation is printed.
PEAK_TFLOPS = {"H100 PCIe": (756, 51), "H100": (989, 67), "H200": (989, 67), "A100": (312, 19.5),
               "L40S": (362, 91.6), "RTX 4090": (165, 82.6)}


def device_peak_flops(configured_tflops: float | None, device: torch.device, bf16: bool) -> float | None:
    """The device's peak FLOP/s at the precision the steps run in: configured, known, or None."""
    if configured_tflops:
        return 1e12 * configured_tflops
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (bf16_peak, fp32_peak) in PEAK_TFLOPS.items():
        if key in name:
            return 1e12 * (bf16_peak if bf16 else fp32_peak)
    return None


@contextmanager
def log_to_file(path: Path, main: bool):
    """While the block runs: on the main process, copy the `vjepa_ac` loggers' records from INFO up to
    `path`; on the others, let only warnings through (one copy of each message under torchrun)."""
    root = logging.getLogger("vjepa_ac")
    level = root.level
    handler = None
    if main:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    else:
        root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(level)
        if handler is not None:
            root.removeHandler(handler)
            handler.close()
