"""Crash safety and reproducibility, proven by killing and repeating (docs/robustness.md).

- Training runs (pretraining, fine-tuning) are killed with SIGKILL at random moments and at chosen
  points inside a checkpoint write, then resumed with `resume=true`: after every kill a valid
  checkpoint at most one `train.checkpoint_every` back is what resume finds, and the finished run's
  weights and `metrics.jsonl` are an uninterrupted run's.
- The collectors and the benchmark are killed while writing a file and run again: no partial file
  is read, and the data / results are an uninterrupted run's.
- The same seed gives the same numbers: loss curves, and benchmark episodes over 0, 1 and 2 workers.
- Bad inputs fail naming the file, key or parameter (the rest of the table's inputs are tested in
  test_data_video.py, test_data_robot_logs.py, test_checkpoint.py, test_finetune.py and test_envs.py).

Training runs and the stub benchmark are killed in processes forked from this one (torch and
transformers are imported once). The collectors run as `python tests/test_crash_safety.py '<spec>'`,
which runs the real script in a fresh process: a fork of a process that made a GL context can hang.
The >= 20-kill run is `test_many_kills_of_training_runs` (-m slow; `-s` prints one line per kill).
"""
import importlib
import itertools
import json
import multiprocessing
import os
import random
import runpy
import signal
import subprocess
import sys
import threading
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 600


# ----------------------------------------------------------------------------- killing a process


@dataclass(frozen=True)
class Kill:
    """SIGKILL at the `call`-th call of `target` whose argument `path_arg` contains `match`.

    `target` is `"module:function"`, or `"module:os.replace"` for a function of a module that
    `module` imported (patched for `module` alone). With `torn`, the file at `path_arg` is first cut
    to half its size, as if the kill came mid-write (the call is made first when the file does not
    exist yet: a writer such as `save_file`).
    """

    target: str
    call: int = 1
    match: str = ""
    path_arg: int = 0
    torn: bool = False


def arm(kill: Kill) -> None:
    """Install `kill` in this process."""
    module_name, name = kill.target.split(":")
    owner = importlib.import_module(module_name)
    if "." in name:
        imported, name = name.split(".")
        private = types.ModuleType(imported)
        private.__dict__.update(vars(getattr(owner, imported)))
        setattr(owner, imported, private)
        owner = private
    real, calls = getattr(owner, name), itertools.count(1)

    def killing(*args, **kwargs):
        path = Path(args[kill.path_arg])
        if kill.match in str(path) and next(calls) == kill.call:
            if kill.torn:
                if not path.exists():
                    real(*args, **kwargs)
                path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(owner, name, killing)


if __name__ == "__main__":  # a child of `run_script`, which needs none of the imports below
    spec = json.loads(sys.argv[1])
    if spec["kill"]:
        arm(Kill(**spec["kill"]))
    script = ROOT / "scripts" / f"{spec['script']}.py"
    sys.argv = [str(script), *spec["overrides"]]
    runpy.run_path(str(script), run_name="__main__")
    sys.exit(0)

# The imports a test needs (E402: after the child's entry point, which needs none of them).
import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.errors import ConfigCompositionException  # noqa: E402
from safetensors import SafetensorError  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from test_benchmark import config, make_point_env, make_point_expert  # noqa: E402
from test_data_robot_logs import CAMERA, write_dataset  # noqa: E402
from test_finetune import MovingSquare, _cfg  # noqa: E402
from test_pretrain import clips, small_cfg  # noqa: E402
from tqdm import tqdm  # noqa: E402

import envs  # noqa: E402, F401  (registers the env ids)
import vjepa_ac.checkpoint as checkpoint  # noqa: E402
import vjepa_ac.train_loop as train_loop  # noqa: E402
from planners.benchmark import read_episode, run_benchmark  # noqa: E402
from vjepa_ac.checkpoint import (CheckpointMismatchError, load_train_state, load_weights,  # noqa: E402
                                 resolve_checkpoint)
from vjepa_ac.data import DatasetFormatError, RobotLogDataset, VideoClipDataset, sim_collection  # noqa: E402
from vjepa_ac.data.video import find_videos  # noqa: E402
from vjepa_ac.data.video_io import VideoError, read_video  # noqa: E402
from vjepa_ac.finetune import finetune  # noqa: E402
from vjepa_ac.pretrain import pretrain  # noqa: E402


def _armed(target: Callable[[], object], kill: Kill | None) -> None:
    # tqdm's lock is a semaphore shared with the parent through the fork: killed while holding it,
    # the child would leave the parent's next progress bar waiting for ever
    tqdm.set_lock(threading.RLock())
    if kill is not None:
        arm(kill)
    target()


def _killed(returncode: int, output: str = "") -> bool:
    """True for a process SIGKILLed, False for one that finished; any other end fails the test."""
    assert returncode in (0, -signal.SIGKILL), f"child exited with {returncode}\n{output[-3000:]}"
    return returncode == -signal.SIGKILL


def run_forked(target: Callable[[], object], kill: Kill | None = None, kill_after_s: float | None = None) -> bool:
    """`target()` in a forked process, SIGKILLed by `kill` from inside or `kill_after_s` seconds after
    it started from outside; returns whether it was killed (False: it finished first)."""
    process = multiprocessing.get_context("fork").Process(target=_armed, args=(target, kill))
    process.start()
    process.join(CHILD_TIMEOUT_S if kill_after_s is None else kill_after_s)
    if process.is_alive():
        assert kill_after_s is not None, f"child still running after {CHILD_TIMEOUT_S} s"
        process.kill()
        process.join()
    return _killed(process.exitcode)


def run_script(script: str, overrides: list[str], kill: Kill | None = None) -> bool:
    """scripts/<script>.py with Hydra overrides in a fresh process, with `kill` armed in it; returns
    whether it was killed."""
    spec = json.dumps({"script": script, "overrides": overrides, "kill": asdict(kill) if kill else None})
    result = subprocess.run([sys.executable, __file__, spec], capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    return _killed(result.returncode, result.stderr)


# ----------------------------------------------------------------------------- training killed and resumed


def metrics_rows(run_dir: Path) -> list[dict]:
    """The rows of `metrics.jsonl` (none before there is one) without throughput figures (timings);
    a line cut short is left out."""
    path, rows = run_dir / "metrics.jsonl", []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        rows.append({k: v for k, v in row.items() if not k.startswith("throughput/")})
    return rows


@dataclass(frozen=True)
class Training:
    """One tiny training run: `start(resume)` runs it in this process, writing into `run_dir`."""

    name: str
    start: Callable[[bool], Path]
    run_dir: Path
    steps: int
    checkpoint_every: int


def pretraining(out: Path, *overrides: str) -> Training:
    """tests/test_pretrain.py's tiny run (6 steps, a checkpoint every 3) on its in-memory clips."""
    cfgs = {resume: small_cfg(out, *overrides, f"resume={str(resume).lower()}") for resume in (False, True)}
    return Training("pretraining", lambda resume: pretrain(cfgs[resume], dataset=clips()), out,
                    cfgs[False].train.steps, cfgs[False].train.checkpoint_every)


def finetuning(out: Path, **overrides) -> Training:
    """tests/test_finetune.py's tiny run (6 steps) on its moving-square windows, a checkpoint every 2."""
    cfgs = {resume: _cfg(out, threads=1, resume=resume, train={"checkpoint_every": 2, "log_every": 1}, **overrides)
            for resume in (False, True)}
    return Training("fine-tuning", lambda resume: finetune(cfgs[resume], MovingSquare(32)), out / "run",
                    cfgs[False].train.steps, cfgs[False].train.checkpoint_every)


@dataclass(frozen=True)
class Outcome:
    """What one kill left behind."""

    run: str
    moment: str                    # the Kill, or "random, after 1.23 s"
    killed: bool                   # False: the run finished before the kill came
    during_checkpoint_write: bool  # killed inside save_checkpoint
    logged_step: int               # the last step in metrics.jsonl
    resumes_from: int              # the step of the checkpoint resume=true finds (0: none, from scratch)


SAVING = "saving"  # present in the run folder while a killed run's checkpoint write ran


def watch_checkpoint_writes(run_dir: Path) -> None:
    """In a child: `<run_dir>/saving` exists while `save_checkpoint` runs, so a kill inside a write is
    told from one between writes (`checkpoint.tmp` or `.old` may be left from an earlier kill)."""
    marker, real = run_dir / SAVING, train_loop.save_checkpoint

    def saving(*args, **kwargs):
        marker.touch()
        directory = real(*args, **kwargs)
        marker.unlink()
        return directory

    train_loop.save_checkpoint = saving


def check_after_kill(training: Training, moment: str, killed: bool) -> Outcome:
    """The checkpoint resume=true will find is readable and at most one checkpoint interval back."""
    run_dir = training.run_dir
    during_write = (run_dir / SAVING).exists()
    (run_dir / SAVING).unlink(missing_ok=True)
    logged = max((row["step"] for row in metrics_rows(run_dir)), default=0)
    try:
        checkpoint = resolve_checkpoint(run_dir / "checkpoint")
    except FileNotFoundError:
        resumes_from = 0
    else:
        assert load_weights(checkpoint)  # every tensor readable
        resumes_from = load_train_state(checkpoint, restore_rng=False)["step"]
    outcome = Outcome(training.name, moment, killed, during_write, logged, resumes_from)
    assert logged - resumes_from <= training.checkpoint_every, outcome
    return outcome


def kill_and_resume(training: Training, kills: list[Kill | float], duration_s: float = 0.0) -> list[Outcome]:
    """Start the run and kill it per `kills`, resuming after each, then finish it here; returns what
    every kill left. A float u in [0, 1) is a kill from outside after u times the time the rest of
    the run takes (`duration_s`, an uninterrupted run's, times the share of the steps left)."""
    outcomes, resumes_from = [], 0
    for i, kill in enumerate(kills):
        if resumes_from == training.steps:
            break  # finished before the kills ran out
        resume = i > 0

        def start(resume=resume):
            watch_checkpoint_writes(training.run_dir)
            training.start(resume)

        if isinstance(kill, Kill):
            killed, moment = run_forked(start, kill=kill), str(kill)
        else:
            delay = kill * duration_s * (1 - resumes_from / training.steps)
            killed, moment = run_forked(start, kill_after_s=delay), f"random, after {delay:.3f} s"
        outcomes.append(check_after_kill(training, moment, killed))
        resumes_from = outcomes[-1].resumes_from
    training.start(True)
    assert not (training.run_dir / "checkpoint.tmp").exists() and not (training.run_dir / "checkpoint.old").exists()
    return outcomes


def run_reference(training: Training) -> float:
    """Run it uninterrupted, here and then again in a forked process, as the killed runs are; returns
    the seconds the fork took (the first run imports what a run imports lazily, so forks start warm)."""
    training.start(False)
    start = time.perf_counter()
    assert not run_forked(lambda: training.start(False))
    return time.perf_counter() - start


def assert_same_run(run_dir: Path, reference_dir: Path) -> None:
    """The same weights (float tolerance) and metrics.jsonl rows as the reference."""
    got, want = load_weights(run_dir / "checkpoint"), load_weights(reference_dir / "checkpoint")
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6, msg=key)
    rows, reference = metrics_rows(run_dir), metrics_rows(reference_dir)
    assert [r["step"] for r in rows] == [r["step"] for r in reference]
    for row, expected in zip(rows, reference):
        assert row == pytest.approx(expected, rel=1e-5, abs=1e-7), row["step"]


# Points inside the second checkpoint write of a run (the first one is then the previous checkpoint).
# save_checkpoint calls, per write: save_file twice (weights, then resume state),
# os.replace once for the first write and twice after (checkpoint -> .old, .tmp -> checkpoint),
# shutil.rmtree twice for the first write and three times after (.tmp, .old, .old).
KILLS_IN_A_CHECKPOINT_WRITE = [
    Kill("vjepa_ac.checkpoint:save_file", call=3, path_arg=1, torn=True),  # weights half-written
    Kill("vjepa_ac.checkpoint:save_file", call=4, path_arg=1),             # weights written, no resume state
    Kill("vjepa_ac.checkpoint:save_file", call=4, path_arg=1, torn=True),  # resume state half-written
    Kill("vjepa_ac.checkpoint:os.replace", call=3),                        # checkpoint moved to .old, .tmp not in place
    Kill("vjepa_ac.checkpoint:shutil.rmtree", call=5),                     # new checkpoint in place, .old not removed
    Kill("vjepa_ac.checkpoint:os.replace", call=1),                        # the first checkpoint never landed
]


def test_pretraining_killed_between_the_checkpoint_renames_resumes_from_the_old_one(tmp_path):
    """Killed inside the second checkpoint write, after `checkpoint` was moved to `checkpoint.old` and
    before `checkpoint.tmp` took its place: resume falls back to `.old` (step 3) and ends as an
    uninterrupted run; metrics.jsonl and TensorBoard show each step once."""
    pretrain(small_cfg(tmp_path / "reference"), dataset=clips())
    training = pretraining(tmp_path / "run")
    assert run_forked(lambda: training.start(False), kill=KILLS_IN_A_CHECKPOINT_WRITE[3])
    run = training.run_dir
    assert not (run / "checkpoint").exists() and (run / "checkpoint.tmp").exists()
    assert resolve_checkpoint(run / "checkpoint") == run / "checkpoint.old"
    outcome = check_after_kill(training, "between the renames", killed=True)
    assert (outcome.logged_step, outcome.resumes_from) == (6, 3)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "lo')  # as if a line had been cut short by the kill too
    time.sleep(1.0)  # TensorBoard reads event files in name order, and a name starts with the second it was opened
    training.start(True)
    assert_same_run(run, tmp_path / "reference")
    steps, losses = zip(*tensorboard_losses(run))  # the steps logged again replace the first ones
    assert list(steps) == [row["step"] for row in metrics_rows(run)]
    assert list(losses) == pytest.approx([row["loss"] for row in metrics_rows(run)])


def tensorboard_losses(run_dir: Path) -> list[tuple[int, float]]:
    """(step, loss) as TensorBoard shows them."""
    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars("loss")]


def test_finetuning_killed_mid_write_and_at_random_resumes_each_time_and_ends_as_uninterrupted(tmp_path):
    """Killed while writing the resume state of its second checkpoint (left half-written in
    checkpoint.tmp), then twice at random moments: every resume starts from a readable checkpoint at
    most one interval back, and the finished run is the uninterrupted one."""
    reference = finetuning(tmp_path / "reference")
    duration = run_reference(reference)
    rng = random.Random(0)
    training = finetuning(tmp_path / "killed")
    outcomes = kill_and_resume(training, [KILLS_IN_A_CHECKPOINT_WRITE[2], rng.random(), rng.random()], duration)
    assert outcomes[0].during_checkpoint_write and outcomes[0].resumes_from == 2
    assert_same_run(training.run_dir, reference.run_dir)


def test_same_seed_gives_the_same_loss_curve_on_the_cpu(tmp_path):
    for name, make in (("pretraining", pretraining), ("fine-tuning", finetuning)):
        first, second = make(tmp_path / name / "a"), make(tmp_path / name / "b")
        first.start(False)
        second.start(False)
        assert metrics_rows(first.run_dir) == metrics_rows(second.run_dir), name
        assert len(metrics_rows(first.run_dir)) >= 3


@pytest.mark.slow
def test_many_kills_of_training_runs(tmp_path):
    """>= 20 SIGKILLs over pretraining and fine-tuning (its embedding cache on): at every point of a
    checkpoint write listed above, while the embedding cache is written, and at random moments (two
    per run: the second one in the resumed run). After every kill resume finds a valid checkpoint at
    most one interval back, and every finished run equals the uninterrupted reference."""
    rng = random.Random(0)
    outcomes = []
    kinds = [("pretraining", pretraining, {}, []),
             ("fine-tuning", finetuning, {"cache": {"enabled": True}}, [Kill("vjepa_ac.embedding_cache:os.replace")])]
    for name, make, overrides, extra_kills in kinds:
        reference = make(tmp_path / name / "reference", **overrides)
        duration = run_reference(reference)
        chains = [[kill] for kill in KILLS_IN_A_CHECKPOINT_WRITE + extra_kills]
        chains += [[rng.random(), rng.random()] for _ in range(8)]
        for i, kills in enumerate(chains):
            training = make(tmp_path / name / f"killed_{i}", **overrides)
            outcomes += kill_and_resume(training, kills, duration)
            assert_same_run(training.run_dir, reference.run_dir)
    print("\nrun | moment | killed | during a checkpoint write | last logged step | resumes from")
    for o in outcomes:
        print(f"{o.run} | {o.moment} | {o.killed} | {o.during_checkpoint_write} | {o.logged_step} | {o.resumes_from}")
    killed = [o for o in outcomes if o.killed]
    print(f"{len(killed)} kills, {sum(o.during_checkpoint_write for o in killed)} during a checkpoint write")
    assert len(killed) >= 20 and sum(o.during_checkpoint_write for o in killed) >= 10


# ----------------------------------------------------------------------------- collectors killed and re-run


def collect(script: str, overrides: list[str]) -> None:
    """scripts/<script>.py's collector, in this process."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        getattr(sim_collection, script)(compose(script, overrides=overrides))


def dataset_files(root: Path) -> list[Path]:
    """The files of a collected dataset, relative to it: neither partial (hidden) files nor Hydra's."""
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and ".hydra" not in p.parts and p.suffix != ".log")


def assert_same_files(root: Path, reference: Path) -> None:
    """The same files, holding the same tables, JSON and decoded video frames."""
    assert dataset_files(root) == dataset_files(reference)
    for name in dataset_files(root):
        a, b = root / name, reference / name
        if name.suffix == ".parquet":
            assert pq.read_table(a).equals(pq.read_table(b)), name
        elif name.suffix == ".mp4":
            assert np.array_equal(read_video(a), read_video(b)), name
        else:
            assert json.loads(a.read_text()) == json.loads(b.read_text()), name


VIDEOS = ["num_videos=3", "frames_per_video=12", "segment_steps=[3,6]", "num_workers=1"]


def test_video_collector_killed_mid_write_leaves_no_partial_video_and_resumes_to_the_same_corpus(tmp_path):
    collect("collect_videos", [f"output_dir={tmp_path / 'reference'}", *VIDEOS])
    out = tmp_path / "killed"
    # the second video's temp file cut in half, before its rename
    assert run_script("collect_videos", [f"output_dir={out}", *VIDEOS],
                      Kill("vjepa_ac.data.video_io:os.replace", call=2, torn=True))
    assert [p.name for p in out.glob(".*.partial")] == [".video_000001.mp4.partial"]
    assert [p.name for p in find_videos(out)] == ["video_000000.mp4"]
    assert not VideoClipDataset(out, frames_per_clip=4, resolution=32).skipped  # nothing half-written is read
    collect("collect_videos", [f"output_dir={out}", *VIDEOS])
    assert_same_files(out, tmp_path / "reference")


ROBOT_LOGS = ["tasks=[reach]", "episodes_per_task=2", "episodes_per_file=1", "random_fraction=0.5", "num_workers=1"]


def test_robot_log_collector_killed_before_info_json_resumes_to_the_same_dataset(tmp_path):
    """Killed after the second group's episode file and stats, before info.json counts the group:
    the re-run writes that group again, once, and the dataset equals an uninterrupted one (before
    the fix it listed the group twice and could not be read)."""
    collect("collect_robot_logs", [f"output_dir={tmp_path / 'reference'}", *ROBOT_LOGS])
    out = tmp_path / "killed"
    assert run_script("collect_robot_logs", [f"output_dir={out}", *ROBOT_LOGS],
                      Kill("vjepa_ac.data.lerobot_writer:_atomic", call=2, match="info.json"))
    assert json.loads((out / "meta/info.json").read_text())["total_episodes"] == 1
    collect("collect_robot_logs", [f"output_dir={out}", *ROBOT_LOGS])
    assert_same_files(out, tmp_path / "reference")
    assert len(RobotLogDataset(out, num_steps=2, split="all").episodes) == 2


@pytest.mark.slow
def test_robot_log_collector_killed_mid_write_of_a_data_file_reads_the_groups_before_it(tmp_path):
    collect("collect_robot_logs", [f"output_dir={tmp_path / 'reference'}", *ROBOT_LOGS])
    out = tmp_path / "killed"
    assert run_script("collect_robot_logs", [f"output_dir={out}", *ROBOT_LOGS],
                      Kill("vjepa_ac.data.lerobot_writer:os.replace", call=1, match="file-001", torn=True))
    assert len(RobotLogDataset(out, num_steps=2, split="all").episodes) == 1  # the torn file is not read
    collect("collect_robot_logs", [f"output_dir={out}", *ROBOT_LOGS])
    assert_same_files(out, tmp_path / "reference")


# ----------------------------------------------------------------------------- the benchmark

TIMINGS = {"time_per_action", "goal_encode_s", "encode_s", "rollout_s", "overhead_s", "plan_s_median", "plan_s_p95",
           "plan_s_mean", "plan_s_split_mean"}


def without_timings(x):
    """An episode summary or results cell with every timing left out, recursively."""
    if isinstance(x, dict):
        return {k: without_timings(v) for k, v in x.items() if k not in TIMINGS}
    if isinstance(x, list):
        return [without_timings(v) for v in x]
    return x


def episodes(out: Path) -> dict[str, dict]:
    return {str(p.relative_to(out)): without_timings(json.loads(p.read_text()))
            for p in sorted((out / "episodes").rglob("*.json"))}


def benchmark(out: Path, **overrides) -> dict:
    """The stub-env benchmark of tests/test_benchmark.py: random, expert and oracle CEM, 3 episodes each."""
    cfg = config(out, episodes=3, videos_per_cell=0, **overrides)
    return run_benchmark(cfg, out, make_point_env, make_point_expert)


def test_benchmark_killed_mid_write_of_an_episode_resumes_to_the_same_results(tmp_path):
    reference = benchmark(tmp_path / "reference")
    out = tmp_path / "killed"
    # the fourth episode's temp file cut in half, before its rename
    assert run_forked(lambda: benchmark(out), Kill("vjepa_ac.files:os.replace", call=4, match="seed_", torn=True))
    torn = list((out / "episodes").rglob("*.tmp"))
    assert len(torn) == 1 and read_episode(torn[0].with_suffix("")) is None  # never under its final name
    assert len(episodes(out)) == 3
    results = benchmark(out)
    assert episodes(out) == episodes(tmp_path / "reference")
    assert without_timings(results["cells"]) == without_timings(reference["cells"])


def test_benchmark_same_seed_same_episodes_twice_and_over_one_or_two_workers(tmp_path):
    """Per-episode outcomes and energies are the same whichever process ran which episode."""
    runs = {name: tmp_path / name for name in ("in_process", "again", "one_worker", "two_workers")}
    for (name, out), workers in zip(runs.items(), (0, 0, 1, 2)):
        benchmark(out, num_workers=workers)
    reference = episodes(runs["in_process"])
    assert len(reference) == 9 and all(e["records"] for e in reference.values())
    for name, out in runs.items():
        assert episodes(out) == reference, name


@pytest.mark.slow
def test_real_benchmark_killed_mid_write_resumes_to_the_same_episodes_over_two_workers(tmp_path):
    """scripts/benchmark.py on the MuJoCo Reach task: killed while writing its third episode, re-run
    over 2 worker processes, it holds the episodes of an uninterrupted run over 1."""
    common = ["tasks=[reach]", "run_methods=[random,expert]", "episodes=2", "videos_per_cell=0", "threads=1"]
    assert not run_script("benchmark", [f"output_dir={tmp_path / 'reference'}", "num_workers=1", *common])
    out = tmp_path / "killed"
    assert run_script("benchmark", [f"output_dir={out}", "num_workers=0", *common],
                      Kill("vjepa_ac.files:os.replace", call=3, match="seed_", torn=True))
    assert len(episodes(out)) == 2 and len(list((out / "episodes").rglob("*.tmp"))) == 1
    assert not run_script("benchmark", [f"output_dir={out}", "num_workers=2", *common])
    assert episodes(out) == episodes(tmp_path / "reference")
    assert len(episodes(out)) == 4


# ----------------------------------------------------------------------------- bad inputs


def test_truncated_dataset_and_checkpoint_files_are_named(tmp_path):
    def cut(path: Path) -> Path:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path

    for name, error, message in [
        ("meta/episodes/chunk-000/file-001.parquet", DatasetFormatError, "file-001.parquet: not a readable parquet"),
        ("meta/info.json", DatasetFormatError, "info.json: not valid JSON"),
        ("data/chunk-000/file-001.parquet", ValueError, "file-001.parquet.*Parquet magic bytes not found"),
        (f"videos/{CAMERA}/chunk-000/file-001.mp4", VideoError, "file-001.mp4: cannot read video"),
    ]:
        root = write_dataset(tmp_path / name.replace("/", "_"))
        cut(root / name)
        with pytest.raises(error, match=message):
            RobotLogDataset(root, split="all", num_steps=2)
    checkpoint.save_checkpoint(tmp_path / "checkpoint", {"net": torch.nn.Linear(3, 3)})
    cut(tmp_path / "checkpoint" / "model.safetensors")
    with pytest.raises(ValueError, match="model.safetensors: damaged checkpoint file"):
        load_weights(tmp_path / "checkpoint")


def test_parquet_without_a_column_is_named(tmp_path):
    root = write_dataset(tmp_path / "ds")
    path = root / "data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(path).drop(["action"]), path)
    with pytest.raises(DatasetFormatError, match=r"file-000.parquet: episodes \[0, 1\]: columns \['action'\] missing"):
        RobotLogDataset(root, split="all", num_steps=2)


def test_full_disk_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 3)
    optimizer = torch.optim.AdamW(model.parameters())
    checkpoint.save_checkpoint(tmp_path / "checkpoint", {"net": model}, optimizer=optimizer, step=3)

    def full_disk(tensors, filename, metadata=None):  # what safetensors raises on a full disk
        Path(filename).write_bytes(b"\0" * 100)
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    with pytest.raises(checkpoint.CheckpointWriteError, match=r"writing checkpoint .*checkpoint failed \(Error while "
                       r"serializing: I/O error: No space left on device.*previous checkpoint, if any, is untouched"):
        checkpoint.save_checkpoint(tmp_path / "checkpoint", {"net": model}, optimizer=optimizer, step=6)
    assert not (tmp_path / "checkpoint.tmp").exists()  # the partial copy does not hold the space
    assert load_train_state(tmp_path / "checkpoint", restore_rng=False)["step"] == 3


def test_a_checkpoint_of_another_shape_lists_the_parameters_on_resume(tmp_path):
    pretrain(small_cfg(tmp_path, "train.steps=1", "optim.warmup_steps=0"), dataset=clips())
    with pytest.raises(CheckpointMismatchError, match=r"checkpoint \[encoder\] does not match VideoEncoder:\n  "
                                                      r"wrong shape \(36\): embeddings.patch_embeddings.proj.bias: "
                                                      r"checkpoint \(48,\) vs model \(64,\)"):
        pretrain(small_cfg(tmp_path, "train.steps=1", "optim.warmup_steps=0", "model.hidden_size=64", "resume=true"),
                 dataset=clips())


def test_a_misspelt_config_key_is_named():
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        with pytest.raises(ConfigCompositionException, match=r"Could not override 'train.stpes'"):
            compose("pretrain", overrides=["train.stpes=10"])


def test_an_env_id_that_does_not_exist_is_named():
    with pytest.raises(gymnasium.error.NameNotFound, match="Environment `Stack` doesn't exist in namespace vjepa_ac"):
        gymnasium.make("vjepa_ac/Stack-v0")
