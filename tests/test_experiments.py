"""The benchmark's configuration: the default run, every experiment config (configs/experiment/),
methods that start from another (`like`), and how tables label what a method is."""
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from planners.benchmark import method_label, summary_table, validate_config
from planners.factory import predicts_latents, resolve_methods

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "configs/experiment").glob("*.yaml"))


@pytest.fixture(scope="module", autouse=True)
def load_each_checkpoint_once():
    """The configs name the same few shipped checkpoints many times: load each once in this module."""
    from vjepa_ac import WorldModel

    loaded, load = {}, WorldModel.from_checkpoint
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WorldModel, "from_checkpoint",
                      lambda source, device="cpu": loaded.get((source, device)) or
                      loaded.setdefault((source, device), load(source, device=device)))
        yield


def benchmark_config(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = OmegaConf.to_container(compose("benchmark", overrides=list(overrides)), resolve=True)
    return {**cfg, "methods": resolve_methods(cfg["methods"])}


def test_the_default_run_has_at_most_seven_methods_and_labels_its_baselines():
    cfg = benchmark_config()
    assert len(cfg["run_methods"]) <= 7
    validate_config(cfg)  # loads every shipped checkpoint the default methods name
    cells = {name: method_label({"method": name, **kind_of(cfg, name)}) for name in cfg["run_methods"]}
    assert cells["expert"] == "expert (privileged)"
    assert cells["oracle_cem_subgoals"] == "oracle_cem_subgoals (privileged, with subgoal images)"
    assert cells["learned_cem"] == "learned_cem"  # its energy rolls out the predictor
    assert cells["learned_cem_prior_wrist"] == "learned_cem_prior_wrist (no predictor in the energy)"


def kind_of(cfg: dict, name: str) -> dict:
    from planners.benchmark import cell_kind

    return {k: v for k, v in cell_kind(name, cfg["methods"][name]).items() if k != "method"}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_config_composes_and_names_shipped_checkpoints(name):
    text = (ROOT / "configs/experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_\n# Experiment: ")  # each file says what it tests
    assert f"+experiment={name}" in text  # and how to run it
    cfg = benchmark_config(f"+experiment={name}")
    assert set(cfg["run_methods"]) <= set(cfg["methods"])
    validate_config(cfg)


def test_an_experiment_changes_only_what_it_names():
    base, ablation = benchmark_config(), benchmark_config("+experiment=predictor_off")
    twin = ablation["methods"]["learned_cem_subgoals_predictor_off"]
    assert twin["planner"] == {**base["methods"]["learned_cem_subgoals"]["planner"], "latent_weight": 0.0}
    assert {k: v for k, v in twin.items() if k != "planner"} == \
        {k: v for k, v in base["methods"]["learned_cem_subgoals"].items() if k != "planner"}
    assert not predicts_latents(twin) and predicts_latents(base["methods"]["learned_cem_subgoals"])
    assert ablation["methods"]["learned_cem"] == base["methods"]["learned_cem"]


def test_like_merges_dicts_key_by_key_and_fails_on_unknown_names_and_cycles():
    methods = {"a": {"kind": "planner", "planner": {"name": "cem", "horizon": 2}, "goals": "final"},
               "b": {"like": "a", "planner": {"horizon": 3}},
               "c": {"like": "b", "goals": "subgoals"}}
    resolved = resolve_methods(methods)
    assert resolved["c"] == {"kind": "planner", "planner": {"name": "cem", "horizon": 3}, "goals": "subgoals"}
    assert resolved["a"] == methods["a"] and "like" not in resolved["b"]
    with pytest.raises(ValueError, match="methods.b.like names 'z'"):
        resolve_methods({"b": {"like": "z"}})
    with pytest.raises(ValueError, match="loops through a -> b -> a"):
        resolve_methods({"a": {"like": "b"}, "b": {"like": "a"}})


def test_summary_table_has_a_row_per_method_and_a_column_per_task():
    def cell(task, method, success, median):
        return {"task": task, "method": method, "privileged": method == "expert", "goals": "final",
                "predictor_unused": False, "episodes": 20, "success": success, "success_ci95": [0.5, 0.9],
                "plan_s_median": median}

    results = {"cells": [cell("reach", "expert", 1.0, 0.001), cell("grasp", "expert", 0.75, 0.002),
                         cell("reach", "learned_cem", 0.5, 0.2), cell("grasp", "learned_cem", 0.05, 0.3)]}
    lines = summary_table(results).splitlines()
    assert lines[0] == "| method | reach | grasp | plan s/action (median, slowest task) |"
    assert lines[2] == "| expert (privileged) | 100 % [50, 90] (20/20) | 75 % [50, 90] (15/20) | 0.002 |"
    assert lines[3] == "| learned_cem | 50 % [50, 90] (10/20) | 5 % [50, 90] (1/20) | 0.300 |"


def checkpoints_named(value) -> set[str]:
    """Every `checkpoints/<name>` string inside a (nested) method config."""
    if isinstance(value, dict):
        return set().union(*map(checkpoints_named, value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*map(checkpoints_named, value)) if value else set()
    return {value.split("/")[1]} if isinstance(value, str) and value.startswith("checkpoints/") else set()


def test_every_shipped_checkpoint_is_used_by_a_default_method_or_an_experiment():
    used = set()
    for overrides in ([], *[[f"+experiment={name}"] for name in EXPERIMENTS]):
        cfg = benchmark_config(*overrides)
        used |= checkpoints_named({name: cfg["methods"][name] for name in cfg["run_methods"]})
    shipped = {p.name for p in (ROOT / "checkpoints").iterdir() if p.is_dir()}
    assert used == shipped  # nothing shipped that no method uses, nothing used that is not shipped
