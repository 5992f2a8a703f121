import os
import socket
import time

import pytest
import torch.multiprocessing as mp

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
