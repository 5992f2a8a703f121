"""Checkpoints: safetensors weights + resolved config + resume state, written atomically.

A checkpoint is a directory:

    model.safetensors        every module's weights, keys prefixed by the module's name ("encoder.", ...)
    config.yaml              the resolved Hydra config of the run that wrote it
    train_state.safetensors  optional: step, optimizer state and RNG states, for exact resume

No pickle anywhere: optimizer and RNG states are flattened into tensors, and their structure is kept
as JSON in the safetensors metadata. The directory is written to `<dir>.tmp`, then swapped in with
renames, so a crash never leaves a half-written checkpoint under the final name (if it happens
between the two renames, the previous checkpoint is still at `<dir>.old` and `resolve_checkpoint`
finds it). A write that fails (a full disk) removes `<dir>.tmp` and raises `CheckpointWriteError`,
the previous checkpoint untouched; a damaged file raises an error naming it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
TRAIN_STATE_FILE = "train_state.safetensors"


class CheckpointMismatchError(ValueError):
    """Weights do not fit the model: lists every missing, unexpected and wrongly shaped parameter."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. the disk is full); the previous one is untouched."""


# ----------------------------------------------------------------------------- weights + config


def state_dict_of(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Weights of several modules in one flat dict, keys prefixed `<name>.`, contiguous CPU copies."""
    tensors = {}
    for name, module in modules.items():
        module = getattr(module, "module", module)  # unwrap DDP
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().to("cpu").contiguous().clone()
    return tensors


def load_state_into(module: nn.Module, tensors: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load `tensors` into `module` strictly; on any mismatch raise one error listing all of them."""
    module = getattr(module, "module", module)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong_shape = [
        f"{k}: checkpoint {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(tensors))
        if tensors[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong_shape:
        lines = [f"{source} does not match {type(module).__name__}:"]
        for title, items in (("wrong shape", wrong_shape), ("missing", missing), ("unexpected", unexpected)):
            if items:
                more = " ..." if len(items) > 20 else ""
                lines.append(f"  {title} ({len(items)}): " + "; ".join(items[:20]) + more)
        raise CheckpointMismatchError("\n".join(lines))
    module.load_state_dict(tensors, strict=True)


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `<prefix>.`, with the prefix removed."""
    p = prefix + "."
    return {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}


def load_config(directory: str | Path) -> DictConfig:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(_missing(directory, CONFIG_FILE))
    return OmegaConf.load(path)


def _missing(directory: str | Path, file: str) -> str:
    """Why a checkpoint cannot be read: the directory does not exist, or it lacks `file`."""
    if not Path(directory).exists():
        return f"checkpoint directory {directory} does not exist"
    return f"{directory} exists but holds no checkpoint (no {file})"


def resolve_checkpoint(directory: str | Path) -> Path:
    """The checkpoint directory to read: `directory`, or `<directory>.old` if a swap was interrupted."""
    directory = Path(directory)
    if (directory / WEIGHTS_FILE).is_file():
        return directory
    old = directory.with_name(directory.name + ".old")
    if (old / WEIGHTS_FILE).is_file():
        return old
    raise FileNotFoundError(_missing(directory, WEIGHTS_FILE))


def remove_superseded(directory: str | Path) -> None:
    """Remove `<directory>.old` when `<directory>` holds a checkpoint.

    A kill after a swap's second rename leaves the previous checkpoint at `.old`; the next write would
    remove it, but a run killed after its last checkpoint writes none, and would keep a stale copy.
    """
    directory = Path(directory)
    if (directory / WEIGHTS_FILE).is_file():
        shutil.rmtree(directory.with_name(directory.name + ".old"), ignore_errors=True)


def load_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    return _read_tensors(resolve_checkpoint(directory) / WEIGHTS_FILE)


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """`load_file`, naming the file when it is damaged (safetensors' own message does not)."""
    try:
        return load_file(str(path))
    except SafetensorError as e:
        raise ValueError(f"{path}: damaged checkpoint file, not readable as safetensors ({e})") from e


# ----------------------------------------------------------------------------- resume state


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, pstate in sd["state"].items():
        for name, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars[f"{pid}.{name}"] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    tuple_keys = sorted({k for g in sd["param_groups"] for k, v in g.items() if isinstance(v, tuple)})
    return tensors, {"param_groups": groups, "tuple_keys": tuple_keys, "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for key, value in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    groups = [{k: (tuple(v) if k in meta["tuple_keys"] else v) for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    np_state = np.random.get_state()
    py_version, py_ints, py_gauss = random.getstate()
    tensors = {
        "rng.torch": torch.get_rng_state(),
        "rng.numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "rng.python": torch.tensor(py_ints, dtype=torch.int64),
    }
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    meta = {"numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": [py_version, py_gauss]}
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    name, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate((meta["python"][0], tuple(int(x) for x in tensors["rng.python"].tolist()), meta["python"][1]))
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda][: torch.cuda.device_count()])


# ----------------------------------------------------------------------------- save / load


def save_checkpoint(
    directory: str | Path,
    modules: dict[str, nn.Module],
    config: DictConfig | dict | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    step: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write weights (+ resolved config, + resume state when `optimizer` and `step` are given) atomically.

    `extra` is JSON-serialisable run state kept with the resume state (e.g. collapse monitor values).
    Call it on rank 0 only.
    """
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        save_file(state_dict_of(modules), str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        if config is not None:
            cfg = config if isinstance(config, DictConfig) else OmegaConf.create(config)
            (tmp / CONFIG_FILE).write_text(OmegaConf.to_yaml(cfg, resolve=True))
        if optimizer is not None and step is not None:
            opt_tensors, opt_meta = _flatten_optimizer(optimizer)
            rng_tensors, rng_meta = _rng_state()
            meta = {"step": step, "optimizer": opt_meta, "rng": rng_meta, "extra": extra or {}}
            save_file({**opt_tensors, **rng_tensors}, str(tmp / TRAIN_STATE_FILE), metadata={"state": json.dumps(meta)})
    except (OSError, SafetensorError) as e:  # safetensors reports a full disk as a SafetensorError
        shutil.rmtree(tmp, ignore_errors=True)  # a partial copy would keep a full disk full
        raise CheckpointWriteError(f"writing checkpoint {directory} failed ({e}); the previous checkpoint, if any, "
                                   f"is untouched: make room and continue with resume=true") from e
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def load_train_state(directory: str | Path, optimizer: torch.optim.Optimizer | None = None,
                     restore_rng: bool = True) -> dict[str, Any]:
    """Restore optimizer and RNG states from a checkpoint; returns {"step": int, "extra": dict}."""
    directory = resolve_checkpoint(directory)
    path = directory / TRAIN_STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: this checkpoint holds weights only and cannot be resumed")
    tensors = _read_tensors(path)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["state"])
    if optimizer is not None:
        optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    if restore_rng:
        _set_rng_state(tensors, meta["rng"])
    return {"step": int(meta["step"]), "extra": meta.get("extra", {})}
