"""What the CLI and Python users call: resolve profiles, train, batch, load and evaluate runs.

Each CLI command is one call into this package. Its modules, by job:

* :mod:`~daedalus.api.resolve`: profiles to :class:`ResolvedProfile` (agent, env, typed
  config, all checked at once), :func:`make_agent`, :func:`code_references`;
* :mod:`~daedalus.api.session`: one training session in a run folder (:func:`train_resolved`),
  signals, metric sinks; :func:`train`, :func:`train_many`, :func:`train_sequence`;
* :mod:`~daedalus.api.batch`: :func:`batch`, in this process or in worker processes;
* :mod:`~daedalus.api.runs`: saved runs (:func:`load_run`, :func:`runs_table`, :func:`show_run`,
  :func:`evaluate_run`, :func:`replay`), :func:`evaluate_profile`, :func:`describe_agent`;
* :mod:`~daedalus.api.project`: the project's modules (``.daedalus.yaml``) and the listings;
* :mod:`~daedalus.api.compare`: ``runs compare`` (:func:`compare_runs`, :func:`format_comparison`).

Batches and runs build on a session, a session on a resolved profile (an import-linter
contract in pyproject.toml keeps it so).
"""

from __future__ import annotations

from daedalus.agents.stepwise import write_default_profile  # create-default, as it is
from daedalus.api.batch import BatchResult, batch
from daedalus.api.compare import (
    CompareRow,
    bootstrap_iqm_ci,
    compare_runs,
    format_comparison,
    plot_comparison,
    plot_run,
    write_run_plots,
)
from daedalus.api.project import (
    add_module,
    list_agents,
    list_envs,
    list_wrappers,
    load_project_modules,
    project_modules,
    remove_module,
)
from daedalus.api.report import write_report
from daedalus.api.resolve import (
    ResolvedProfile,
    check_memory,
    check_spaces,
    code_references,
    load,
    make_agent,
    validate,
)
from daedalus.api.resume import resume
from daedalus.api.runs import (
    LoadedRun,
    describe_agent,
    evaluate_profile,
    evaluate_run,
    evaluate_target,
    load_run,
    replay,
    runs_table,
    show_run,
)
from daedalus.api.session import (
    DEFAULT_RUNS_DIR,
    RunResult,
    final_evaluation,
    install_signal_handlers,
    seed_everything,
    train,
    train_many,
    train_resolved,
    train_sequence,
)

__all__ = [
    "CompareRow",
    "bootstrap_iqm_ci",
    "compare_runs",
    "format_comparison",
    "plot_comparison",
    "plot_run",
    "write_run_plots",
    "DEFAULT_RUNS_DIR",
    "BatchResult",
    "LoadedRun",
    "ResolvedProfile",
    "RunResult",
    "add_module",
    "batch",
    "check_memory",
    "check_spaces",
    "code_references",
    "describe_agent",
    "evaluate_profile",
    "evaluate_run",
    "evaluate_target",
    "final_evaluation",
    "install_signal_handlers",
    "list_agents",
    "list_envs",
    "list_wrappers",
    "load",
    "load_project_modules",
    "load_run",
    "make_agent",
    "project_modules",
    "remove_module",
    "replay",
    "resume",
    "runs_table",
    "seed_everything",
    "show_run",
    "train",
    "train_many",
    "train_resolved",
    "train_sequence",
    "validate",
    "write_default_profile",
    "write_report",
]
