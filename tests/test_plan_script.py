"""scripts/plan.py and scripts/energy_landscape.py as a newcomer runs them: defaults but a short budget,
on the shipped checkpoint."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}


def test_plan_runs_on_the_shipped_checkpoint_by_default(tmp_path):
    out = tmp_path / "plan"
    subprocess.run([sys.executable, "scripts/plan.py", "max_steps=2", f"output_dir={out}"], cwd=REPO, env=ENV,
                   check=True, timeout=300)
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["methods"]["learned_cem"]["world_model"] == "checkpoints/vjepa_ac_tiny"
    assert results["cells"][0]["episodes"] == 1 and not results["cells"][0]["privileged"]
    assert (out / "videos" / "reach_learned_cem_seed0.mp4").stat().st_size > 0
    assert not (REPO / "outputs").exists() or not any((REPO / "outputs").glob("*/*/.hydra/overrides.yaml"))


def test_plan_runs_the_two_level_planner_on_the_shipped_checkpoints(tmp_path):
    out = tmp_path / "plan"
    subprocess.run([sys.executable, "scripts/plan.py", "env=grasp", "hierarchical=true", "max_steps=5", "videos=0",
                    f"output_dir={out}"], cwd=REPO, env=ENV, check=True, timeout=300)
    results = json.loads((out / "results.json").read_text())
    method = results["config"]["methods"]["learned_cem_hierarchical"]
    assert method["high_level"]["world_model"] == "checkpoints/vjepa_ac_tiny_k4" and not results["cells"][0]["privileged"]
    episode = json.loads(next((out / "episodes").rglob("*.json")).read_text())
    assert len(episode["planner_log"]["subgoals"]) >= 2  # a high-level plan at step 0 and one after 4 steps


def test_plan_names_a_missing_checkpoint_and_leaves_no_folder(tmp_path):
    out = tmp_path / "plan"
    run = subprocess.run([sys.executable, "scripts/plan.py", "world_model=runs/nowhere", f"output_dir={out}"],
                         cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "runs/nowhere" in run.stderr and "does not exist" in run.stderr and "checkpoints/vjepa_ac_tiny" in run.stderr
    assert not (out / "episodes").exists()


@pytest.mark.slow
def test_the_wheel_ships_the_env_configs(tmp_path):
    """A non-editable install builds envs without a checkout: the env YAMLs are package data."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                   check=True, timeout=600)
    names = zipfile.ZipFile(next(tmp_path.glob("vjepa_ac-*.whl"))).namelist()
    for task in ("base", "reach", "grasp", "reach_with_object", "pick_place"):
        assert f"envs/configs/env/{task}.yaml" in names
    assert "envs/assets/scene.xml" in names


def test_energy_landscape_runs_on_the_shipped_checkpoint(tmp_path):
    out = tmp_path / "landscape"
    subprocess.run([sys.executable, "scripts/energy_landscape.py", "grid_size=3", "threads=1", f"output_dir={out}"],
                   cwd=REPO, env=ENV, check=True, timeout=300)
    report = json.loads((out / "energy_landscape.json").read_text())
    assert set(report["panels"]) == {"world model: checkpoints/vjepa_ac_tiny", "PRIVILEGED simulator (ground truth)"}
    assert (out / "energy_landscape.png").stat().st_size > 0
