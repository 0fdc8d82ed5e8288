"""``daedalus tune``: the ``tune:`` section's validation, sampling, a tiny study on CartPole, resume, the best profile."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

import daedalus
from daedalus import api
from daedalus.api.session import RunResult
from daedalus.api.tune import ReportToPruner, aggregate, check_tunable, run_value, suggest, tune
from daedalus.cli.tune_cmd import register
from daedalus.errors import DaedalusError, MissingDependencyError, ProfileError
from daedalus.hooks import EvalEnd
from daedalus.runs.store import list_runs
from tests.conftest import write

optuna = pytest.importorskip("optuna")
# The module, even if daedalus.api one day re-exports the function tune() under the same name.
tune_api = importlib.import_module("daedalus.api.tune")

#: A CartPole PPO profile that trains in a fraction of a second: 512 steps, evaluated every 256.
TINY = """
    tiny:
      agent_id: ppo
      env_id: CartPole-v1
      num_envs: 4
      seed: 3
      config:
        total_steps: 512
        num_steps: 16
        num_minibatches: 1
        update_epochs: 2
        learning_rate: 1.0e-3
        hidden_sizes: [16]
        eval_every_steps: 256
        eval_episodes: 2
        final_eval_episodes: 3
        checkpoint_every_steps: 0
        log_every_steps: 256
      tune:
        learning_rate: {loguniform: [1e-4, 1e-2]}
        config.num_steps: {choice: [16, 32]}
        update_epochs: {int: [1, 3]}
        hidden_sizes: {choice: [[16], [8, 8]]}
"""


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ProfileError) as info:
        api.load(path)
    return info.value.problems


def tune_problems(path: Path) -> list[str]:
    with pytest.raises(ProfileError) as info:
        check_tunable(api.load(path)[0])
    return info.value.problems


# --------------------------------------------------------------------------- validation


def test_the_shape_of_tune_is_checked_at_load_every_problem_with_line_and_fix(workdir: Path) -> None:
    path = write(workdir / "p.yaml", """
        p:
          agent_id: ppo
          env_id: CartPole-v1
          tune:
            learning_rate: {loguniform: [1e-5, 1.0e-2]}
            config.learning_rate: {uniform: [0.1, 0.2]}
            gamma: {logunifrm: [0.9, 0.99]}
            gae_lambda: {uniform: [0.99, 0.9]}
            ent_coef: {loguniform: [0, 0.1]}
            seed: {int: [0, 5]}
            hidden_sizes.0: {choice: [32, 64]}
            update_epochs: {int: [1, 10], step: 2}
            num_steps: {choice: [64]}
            vf_coef: {uniform: [0.1, 1], log: true}
            max_grad_norm: {}
    """)
    assert problems_of(path) == [
        f"{path}:6: profile 'p': 'learning_rate' is tuned twice (as 'learning_rate' and as 'config.learning_rate'). Keep one of the two entries.",
        f"{path}:7: profile 'p': 'tune.gamma': unknown distribution 'logunifrm'. Did you mean 'loguniform'? Use one of: "
        "loguniform: [low, high], uniform: [low, high], int: [low, high] (with step, log), choice: [a, b, ...] (docs/tuning.md).",
        f"{path}:8: profile 'p': 'tune.gae_lambda': uniform bounds [0.99, 0.9] are not low < high. Write {{uniform: [low, high]}}: a float, low < high.",
        f"{path}:9: profile 'p': 'tune.ent_coef': loguniform needs 0 < low, got low 0.0. Use a positive low bound, or uniform for a range that includes 0.",
        f"{path}:10: profile 'p': 'seed' cannot be tuned: tune searches config fields and num_envs. Search a config field "
        "(learning_rate or config.learning_rate) or num_envs; the seed of each run is set with --seeds.",
        f"{path}:11: profile 'p': tune key 'hidden_sizes.0' names a value inside a config field. Tune the whole field, e.g. 'config.hidden_sizes: {{choice: [...]}}'.",
        f"{path}:12: profile 'p': 'tune.update_epochs': high - low (9) is not a multiple of step 2. Use high 9 or 11.",
        f"{path}:13: profile 'p': 'tune.num_steps': choice needs a list of at least two values, got [64]. "
        "List the values to try, e.g. '{choice: [32, 64, 128]}'; a single value belongs under config.",
        f"{path}:14: profile 'p': 'tune.vf_coef': uniform takes no 'log'. Write {{uniform: [low, high]}}: a float, low < high.",
        f"{path}:15: profile 'p': 'tune.max_grad_norm' names no distribution. Name exactly one of: "
        "loguniform: [low, high], uniform: [low, high], int: [low, high] (with step, log), choice: [a, b, ...] (docs/tuning.md).",
    ]


def test_keys_values_and_bounds_are_checked_against_the_agents_config(workdir: Path) -> None:
    path = write(workdir / "p.yaml", """
        q:
          agent_id: ppo
          env_id: CartPole-v1
          tune:
            num_stepz: {int: [16, 64]}
            num_steps: {uniform: [16, 64]}
            gamma: {uniform: [0.9, 1.5]}
            activation: {choice: [tanh, relux]}
            hidden_sizes: {choice: [[64, 64], [0]]}
            num_envs: {choice: [0, 4]}
            learning_rate: {loguniform: [1e-5, 1e-2]}
    """)
    assert tune_problems(path) == [
        f"{path}:5: profile 'q': tune key 'num_stepz' is not a config field of agent 'ppo'. Did you mean 'num_steps'? "
        "Run 'daedalus describe agent ppo' to see every parameter.",
        f"{path}:6: profile 'q': 'num_steps' is int, and uniform draws floats. Use '{{int: [low, high]}}' or '{{choice: [...]}}'.",
        f"{path}:7: profile 'q': 'gamma' must be within [0, 1], got 1.5 ('tune.gamma' draws uniform [0.9, 1.5]). Keep the search "
        "space within the values the field takes: change the bounds or the choices. Run 'daedalus describe agent ppo' to see them.",
        f"{path}:8: profile 'q': 'activation' must be one of 'elu', 'gelu', 'relu', 'silu', 'tanh', got 'relux' ('tune.activation' "
        "draws choice ['tanh', 'relux']). Keep the search space within the values the field takes: change the bounds or the "
        "choices. Run 'daedalus describe agent ppo' to see them.",
        f"{path}:9: profile 'q': every element of 'hidden_sizes' must be >= 1, got 0 ('tune.hidden_sizes' draws choice "
        "[[64, 64], [0]]). Keep the search space within the values the field takes: change the bounds or the choices. "
        "Run 'daedalus describe agent ppo' to see them.",
        f"{path}:10: profile 'q': 'tune.num_envs' can draw choice [0, 4], and num_envs is an integer from 1 to 4096. "
        "Write e.g. 'num_envs: {choice: [4, 8, 16]}' or '{int: [4, 16]}'.",
    ]


def test_a_profile_without_tune_or_without_evaluations_cannot_be_tuned(workdir: Path) -> None:
    path = write(workdir / "p.yaml", """
        plain: {agent_id: ppo, env_id: CartPole-v1}
        blind:
          agent_id: ppo
          env_id: CartPole-v1
          config: {eval_every_steps: 0, final_eval_episodes: 0}
          tune: {learning_rate: {uniform: [0.001, 0.01]}}
    """)
    with pytest.raises(ProfileError, match=r"p.yaml:1: profile 'plain': has no 'tune:' section.*Add one"):
        tune(path, "plain", trials=1, runs_dir=workdir / "runs")
    with pytest.raises(ProfileError, match=r"profile 'blind': evaluates nothing .*Set config.final_eval_episodes"):
        tune(path, "blind", trials=1, runs_dir=workdir / "runs")


def test_train_ignores_tune_and_the_resolved_profile_keeps_it(workdir: Path) -> None:
    path = write(workdir / "p.yaml", TINY)
    resolved = api.load(path)[0]
    assert resolved.config.learning_rate == 1e-3  # the profile's own value, not a drawn one
    assert resolved.resolved_dict()["tune"]["learning_rate"] == {"loguniform": [1e-4, 1e-2]}  # '1e-4' read as a number
    trial = tune_api.trial_profile(resolved.profile, {"learning_rate": 0.005, "num_steps": 32}, "tiny-t0", 7)
    assert "tune" not in trial.to_dict()
    assert (trial.config["learning_rate"], trial.config["num_steps"], trial.seed) == (0.005, 32, 7)


# --------------------------------------------------------------------------- pieces


def test_suggest_draws_every_distribution_within_its_bounds(workdir: Path) -> None:
    path = write(workdir / "p.yaml", """
        p:
          agent_id: ppo
          env_id: CartPole-v1
          num_envs: 2
          tune:
            learning_rate: {loguniform: [1e-4, 1e-2]}
            gae_lambda: {uniform: [0.8, 0.99]}
            update_epochs: {int: [2, 10], step: 4}
            num_steps: {int: [8, 512], log: true}
            hidden_sizes: {choice: [[32], [64, 64], [8, 8, 8]]}
            activation: {choice: [tanh, relu]}
            num_envs: {choice: [1, 2, 4]}
    """)
    space = api.load(path)[0].profile.search_space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [suggest(study.ask(), space) for _ in range(60)]
    assert all(1e-4 <= d["learning_rate"] <= 1e-2 and 0.8 <= d["gae_lambda"] <= 0.99 for d in drawn)
    assert {d["update_epochs"] for d in drawn} == {2, 6, 10}
    assert all(isinstance(d["num_steps"], int) and 8 <= d["num_steps"] <= 512 for d in drawn)
    assert {json.dumps(d["hidden_sizes"]) for d in drawn} == {"[32]", "[64, 64]", "[8, 8, 8]"}
    assert all(isinstance(d["hidden_sizes"], list) for d in drawn)
    assert {d["activation"] for d in drawn} == {"tanh", "relu"} and {d["num_envs"] for d in drawn} == {1, 2, 4}
    # A log scale puts about half the draws below the geometric middle (1e-3), a linear one ~9%.
    below = sum(d["learning_rate"] < 1e-3 for d in drawn) / len(drawn)
    assert 0.3 < below < 0.7


def test_aggregate_mean_and_interquartile_mean() -> None:
    assert aggregate([1.0, 2.0, 6.0]) == 3.0
    assert aggregate([1.0, 2.0, 6.0], "iqm") == 3.0  # fewer than 4 values: nothing trimmed
    # 8 values: the 2 lowest (1, 2) and the 2 highest (7, 100) go; (3 + 4 + 5 + 6) / 4.
    assert aggregate([7.0, 1.0, 100.0, 3.0, 2.0, 6.0, 5.0, 4.0], "iqm") == 4.5
    assert aggregate([7.0, 1.0, 100.0, 3.0, 2.0, 6.0, 5.0, 4.0]) == 16.0


def test_a_runs_value_is_its_final_evaluation_else_its_last_periodic_one() -> None:
    def result(artifacts: dict[str, Any]) -> RunResult:
        return RunResult("r", Path("r"), "p", "ppo", "CartPole-v1", "completed", artifacts=artifacts)

    periodic = {"evaluations": [{"step": 1, "mean_return": 10.0}, {"step": 2, "mean_return": 30.0}]}
    assert run_value(result({**periodic, "final_evaluation": {"mean_return": 42.0}})) == 42.0
    assert run_value(result({**periodic, "final_evaluation_error": "interrupted"})) == 30.0
    assert run_value(result({})) is None


def test_the_pruning_hook_reports_each_evaluation_and_says_why_it_stops() -> None:
    class FakeTrial:
        number = 4

        def __init__(self) -> None:
            self.reported: list[tuple[float, int]] = []

        def report(self, value: float, step: int) -> None:
            self.reported.append((value, step))

        def should_prune(self) -> bool:
            return len(self.reported) >= 2

    trial = FakeTrial()
    hook = ReportToPruner(trial, "median")
    hook.seed = 1
    assert hook.on_eval(EvalEnd(256, 20.0, 1.0, (19.0, 21.0), 0.1)) is None
    reason = hook.on_eval(EvalEnd(512, 25.0, 1.0, (24.0, 26.0), 0.2))
    assert reason == "pruned by optuna (median pruner) at evaluation 2 of trial 4 (seed 1, step 512, mean return 25.00)"
    assert trial.reported == [(20.0, 0), (25.0, 1)] and hook.reason == reason


# --------------------------------------------------------------------------- studies


def test_a_tiny_study_resumes_and_writes_a_best_profile_that_train_reproduces(workdir: Path) -> None:
    path = write(workdir / "p.yaml", TINY)
    runs = workdir / "runs"
    result = tune(path, "tiny", trials=3, seeds=2, pruner="none", runs_dir=runs)
    assert result.ran == 3 and result.counts() == {"complete": 3} and result.seeds == [3, 4]
    assert result.storage == runs / "tune" / "tiny.db" and result.storage.is_file()

    # Every seed of every trial is a normal run: profile id <profile>-t<trial>, batch tune-<study>.
    rows = list_runs(runs, batch_id="tune-tiny")
    assert sorted((r["profile_id"], r["seed"]) for r in rows) == [
        (f"tiny-t{n}", seed) for n in range(3) for seed in (3, 4)
    ]
    for trial in result.trials:
        assert len(trial.run_ids) == 2 and len(trial.seed_values) == 2
        finals = [json.loads((runs / run_id / "eval.json").read_text())["latest"]["mean_return"] for run_id in trial.run_ids]
        assert trial.seed_values == finals
        assert trial.value == pytest.approx(sum(finals) / 2)
        profile = yaml.safe_load((runs / trial.run_ids[0] / "profile.yaml").read_text())[f"tiny-t{trial.number}"]
        assert "tune" not in profile
        assert profile["config"]["learning_rate"] == trial.values["learning_rate"]
        assert profile["config"]["hidden_sizes"] == trial.values["hidden_sizes"]

    # The best trial as a plain profile: its values, the first trial seed, no tune section.
    best = result.best
    assert best is not None and best.value == max(t.value for t in result.trials if t.value is not None)
    assert result.best_profile == runs / "tune" / "tiny-best.yaml"
    loaded = api.load(result.best_profile)
    assert [r.profile.profile_id for r in loaded] == ["tiny-best"]
    best_profile = loaded[0].profile
    assert best_profile.tune == {} and best_profile.seed == 3
    for name, value in best.values.items():
        assert best_profile.config[name] == value
    headers, rows_ = result.table()
    assert rows_[0][0] == str(best.number) and rows_[0][-1] == f"tiny-t{best.number}"
    retrained = daedalus.train(result.best_profile, runs_dir=workdir / "again")
    assert retrained.artifacts["final_evaluation"]["mean_return"] == best.seed_values[0]

    # Resuming: --trials is the total of finished trials, so 3 again runs nothing and 4 runs one more.
    again = tune(path, "tiny", trials=3, seeds=2, pruner="none", runs_dir=runs)
    assert again.ran == 0 and len(again.trials) == 3 and len(list_runs(runs, batch_id="tune-tiny")) == 6
    more = tune(path, "tiny", trials=4, seeds=2, pruner="none", runs_dir=runs)
    assert more.ran == 1 and [t.number for t in more.trials] == [0, 1, 2, 3]
    assert [t.values for t in more.trials[:3]] == [t.values for t in result.trials]

    # Scores made with other seeds (or another profile) would not compare: refused, with the way out.
    with pytest.raises(DaedalusError, match=r"different seeds \(\[3, 4\] then, \[3\] now\).*--study NEW_NAME"):
        tune(path, "tiny", trials=5, seeds=1, runs_dir=runs)
    with pytest.raises(DaedalusError, match=r"different profile values \(config.total_steps\)"):
        tune(path, "tiny", trials=5, seeds=2, runs_dir=runs, overrides=["total_steps=1024"])
    other = tune(path, "tiny", trials=1, seeds=1, study="one-seed", runs_dir=runs, output=workdir / "best.yaml")
    assert other.batch_id == "tune-one-seed" and other.best_profile == workdir / "best.yaml"
    assert len(list_runs(runs, batch_id="tune-one-seed")) == 1


def test_a_pruned_trial_stops_its_run_with_the_reason_and_skips_its_other_seeds(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(workdir / "p.yaml", TINY)
    # A pruner that prunes at the first evaluation, whatever it says.
    monkeypatch.setattr(tune_api, "_pruner", lambda optuna, name: optuna.pruners.ThresholdPruner(lower=1e9))
    result = tune(path, "tiny", trials=2, seeds=2, runs_dir=workdir / "runs")
    assert result.counts() == {"pruned": 2} and result.best is None and result.best_profile is None
    for trial in result.trials:
        assert len(trial.run_ids) == 1  # seed 4 never trained
        run = json.loads((workdir / "runs" / trial.run_ids[0] / "run.json").read_text())
        assert run["status"] == "completed" and run["steps"] < 512
        assert run["stop_reason"].startswith(f"pruned by optuna (median pruner) at evaluation 1 of trial {trial.number} (seed 3, step 256")
        assert trial.note == run["stop_reason"]


def test_a_failed_run_fails_its_trial_and_the_study_goes_on(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(workdir / "p.yaml", TINY)
    real = tune_api.train_resolved
    calls: list[int] = []

    def flaky(resolved: Any, **kwargs: Any) -> RunResult:
        calls.append(1)
        result = real(resolved, **kwargs)
        if len(calls) == 1:
            result.status, result.error = "failed", "loss is NaN"
        return result

    monkeypatch.setattr(tune_api, "train_resolved", flaky)
    result = tune(path, "tiny", trials=2, seeds=1, pruner="none", runs_dir=workdir / "runs")
    assert [t.state for t in result.trials] == ["failed", "complete"]
    assert result.trials[0].note.endswith("failed: loss is NaN")
    assert result.best is result.trials[1]


def test_missing_optuna_is_one_line_saying_what_to_install(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(workdir / "p.yaml", TINY)
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(MissingDependencyError) as info:
        tune(path, "tiny", trials=1, runs_dir=workdir / "runs")
    assert "\n" not in str(info.value) and "pip install 'daedalus[tune]'" in str(info.value)


def test_importing_the_tune_modules_does_not_import_optuna() -> None:
    import subprocess

    code = "import sys, daedalus.api.tune, daedalus.cli.tune_cmd; print('optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- the command


def cli() -> typer.Typer:
    app = typer.Typer(rich_markup_mode=None)
    register(app)

    @app.command()
    def other() -> None:  # a second command, so that 'tune' is a subcommand as in the real app
        """Unused."""

    return app


def test_the_tune_command_prints_the_best_trials_and_where_the_best_profile_is(workdir: Path) -> None:
    path = write(workdir / "p.yaml", TINY)
    out = CliRunner().invoke(cli(), ["tune", str(path), "--trials", "2", "--seeds", "1", "--pruner", "none", "--runs-dir", "runs", "-o", "best.yaml"])
    assert out.exit_code == 0, out.output
    assert "study 'tiny' (runs/tune/tiny.db): 2 complete" in out.output
    assert "trial  mean" in out.output and "tiny-t0" in out.output and "tiny-t1" in out.output
    assert "-> best.yaml" in out.output and "daedalus runs compare --batch tune-tiny --runs-dir runs" in out.output
    assert api.load(workdir / "best.yaml")[0].profile.profile_id == "tiny-best"

    bad = CliRunner().invoke(cli(), ["tune", str(path), "--trials", "1", "--pruner", "hyperband", "--runs-dir", "runs"])
    assert isinstance(bad.exception, DaedalusError) and "unknown pruner 'hyperband'. Use one of: median, halving, none." in str(bad.exception)
    missing = CliRunner().invoke(cli(), ["tune", str(path), "--runs-dir", "runs"])
    assert missing.exit_code == 2 and "--trials" in missing.output
