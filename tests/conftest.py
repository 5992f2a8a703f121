import importlib.util
import os
import socket
import time
from pathlib import Path

import pytest
import torch.multiprocessing as mp
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]

# Headless MuJoCo rendering on CPU-only machines (envs fall back to osmesa if EGL is missing).
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture
def spawn():
    """`spawn(fn, args, nprocs, timeout_s)`: torch.multiprocessing.spawn that fails the test instead of
    hanging CI when a process never exits (e.g. a deadlock tearing down a gloo process group)."""

    def run(fn, args: tuple, nprocs: int, timeout_s: float = 300.0) -> None:
        context = mp.start_processes(fn, args=args, nprocs=nprocs, join=False, start_method="spawn")
        deadline = time.monotonic() + timeout_s
        while not context.join(timeout=1.0):  # raises if a process failed
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                pytest.fail(f"{nprocs} spawned processes still running after {timeout_s:.0f} s")

    return run


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, for a DDP rendezvous (MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def run_script():
    """`run_script(name, overrides)`: scripts/<name>.py's `main` on configs/<name>.yaml composed with
    `overrides`, in this process (so a failure shows its traceback in the test)."""

    def run(name: str, overrides: list[str]) -> None:
        spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "scripts" / f"{name}.py")
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)
        with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
            cfg = compose(name, overrides=overrides)
        script.main(cfg)

    return run
