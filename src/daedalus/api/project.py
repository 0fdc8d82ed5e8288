"""The project: the modules listed in ``.daedalus.yaml`` and what they register.

The registry reads the project file and imports its modules
(:func:`daedalus.registry.load_project_modules`); changing the file is a user's command
(``daedalus module add|remove``) and lives here, with the listings of ``daedalus list``.
"""

from __future__ import annotations

from pathlib import Path

from daedalus.errors import RegistryError
from daedalus.registry import (
    PROJECT_FILE,
    add_project_path,
    find_project_file,
    import_user_module,
    list_agents,
    list_envs,
    list_wrappers,
    load_project_modules,
    read_project_modules,
)

__all__ = [
    "add_module",
    "list_agents",
    "list_envs",
    "list_wrappers",
    "load_project_modules",
    "project_modules",
    "remove_module",
]


def project_modules(start: Path | None = None) -> tuple[Path | None, list[str]]:
    """The nearest ``.daedalus.yaml`` from ``start`` and the modules it lists; ``(None, [])`` without one."""
    project_file = find_project_file(start)
    if project_file is None:
        return None, []
    return project_file, read_project_modules(project_file)


def _write_project_modules(project_file: Path, modules: list[str]) -> None:
    import yaml

    from daedalus.runs.io import atomic_write_text

    text = "# Modules Daedalus imports at start-up (daedalus module add|remove).\n"
    text += yaml.safe_dump({"modules": modules}, sort_keys=False)
    atomic_write_text(project_file, text)


def add_module(name: str, start: Path | None = None) -> Path:
    """Import ``name`` (so it is checked) and record it in the nearest ``.daedalus.yaml``."""
    project_file = find_project_file(start) or (start or Path.cwd()) / PROJECT_FILE
    add_project_path(project_file)
    import_user_module(name)
    modules = read_project_modules(project_file) if project_file.exists() else []
    if name not in modules:
        modules.append(name)
    _write_project_modules(project_file, modules)
    return project_file


def remove_module(name: str, start: Path | None = None) -> Path:
    """Remove ``name`` from the nearest ``.daedalus.yaml``."""
    project_file = find_project_file(start)
    if project_file is None:
        raise RegistryError(f"no {PROJECT_FILE} found from {Path.cwd()} upwards; nothing to remove.")
    modules = read_project_modules(project_file)
    if name not in modules:
        raise RegistryError(
            f"module '{name}' is not listed in {project_file}. Listed: {', '.join(modules) or 'none'}."
        )
    modules.remove(name)
    _write_project_modules(project_file, modules)
    return project_file
