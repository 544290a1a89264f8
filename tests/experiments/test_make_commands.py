"""Every command the Makefile runs, and every complete command the docs show (README,
BENCHMARKS, model cards, reports), still parses: each Hydra entry point's config, with the
command's overrides, composes and validates against the entry point's dataclass, and every
other module named exists and takes the flags it is given. A renamed key, config or flag fails
here rather than hours into `make pipeline` (as `make rank-robot` once did), or in the hands of
a reader rerunning a documented figure."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from experiments.config import to_dataclass
from tests.markdown import tracked_markdown

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "experiments" / "conf"


@cache
def make_commands() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(module, arguments) of every `python -m` line the Makefile's targets run, as `make -n`
    expands them (variables, pattern rules and sub-makes included)."""
    phony = re.search(r"^\.PHONY:(.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert phony is not None, "the Makefile declares its targets in .PHONY"
    targets = phony.group(1).split()
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    commands = set()
    for line in dry_run.stdout.splitlines():
        words = shlex.split(line)
        if "-m" in words and words[0].endswith("python"):
            at = words.index("-m")
            if words[at + 1] != "pip":  # the venv's set-up, not a project command
                commands.add((words[at + 1], tuple(words[at + 2 :])))
    return tuple(sorted(commands))


DOCUMENTED = re.compile(
    r"(?:^|`)\s*(?:\$ )?python -m ((?:experiments|wfm_sim)\.[\w.]+)([^`\n]*)", re.M
)
PLACEHOLDER = re.compile(r"[|<>\\()]|\.\.\.|=[A-Z_]+$|^[A-Z_]+$")


@cache
def documented_commands() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(module, arguments) of every `python -m` command the tracked Markdown files show in
    full; commands with placeholders (`env=wfm|real`, `seed=S`, `...`) are left out."""
    commands = set()
    for document in tracked_markdown():
        for module, rest in DOCUMENTED.findall(document.read_text()):
            try:
                arguments = shlex.split(rest, comments=True)
            except ValueError:  # an unclosed quote: prose, not a command
                continue
            if not any(PLACEHOLDER.search(a) for a in arguments):
                commands.add((module.rstrip("."), tuple(arguments)))
    return tuple(sorted(commands))


def hydra_entry(module_name: str) -> tuple[str, type] | None:
    """The default config name and the dataclass of a Hydra entry point, read off its
    `@hydra.main` and `to_dataclass(cfg, ...)`; None for a module that is not one."""
    module = importlib.import_module(module_name)
    source = inspect.getsource(module)
    decorator = re.search(r'@hydra\.main\([^)]*config_name="(\w+)"', source)
    if decorator is None:
        return None
    schema = re.search(r"to_dataclass\(cfg, (\w+)\)", source)
    assert schema is not None, f"{module_name}'s main validates cfg with to_dataclass"
    return decorator.group(1), getattr(module, schema.group(1))


def commands_of(source: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The Makefile's commands or the docs' (each test runs on both)."""
    if source == "makefile":
        if shutil.which("make") is None:
            pytest.skip("needs make")
        return make_commands()
    return documented_commands()


SOURCES = pytest.mark.parametrize("source", ["makefile", "docs"])


def test_the_makefile_runs_every_entry_point() -> None:
    if shutil.which("make") is None:
        pytest.skip("needs make")
    modules = {module for module, _ in make_commands()}
    assert {"experiments.record", "experiments.train_world_model"} <= modules
    assert {"experiments.rank_policies", "experiments.mpc_demo", "experiments.train_rl"} <= modules
    assert len(make_commands()) > 50


@SOURCES
def test_every_hydra_command_composes_and_validates(source: str) -> None:
    checked = 0
    for module_name, arguments in commands_of(source):
        entry = hydra_entry(module_name)
        if entry is None:
            continue
        config_name, schema = entry
        overrides = list(arguments)
        if "--config-name" in overrides:
            at = overrides.index("--config-name")
            config_name = overrides[at + 1]
            del overrides[at : at + 2]
        command = " ".join(["python -m", module_name, *arguments])
        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
                cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
                HydraConfig.instance().set_config(cfg)  # for ${hydra:...} in a config
                with open_dict(cfg):
                    del cfg["hydra"]
                to_dataclass(cfg, schema)
        except Exception as error:  # noqa: BLE001  (name the command whatever failed)
            pytest.fail(f"`{command}` does not compose: {type(error).__name__}: {error}")
        finally:
            HydraConfig.instance().cfg = None
        checked += 1
    assert checked > 20


@SOURCES
def test_every_other_module_exists_and_takes_its_flags(source: str) -> None:
    checked = 0
    for module_name, arguments in commands_of(source):
        spec = importlib.util.find_spec(module_name)
        assert spec is not None, f"the {source} runs `python -m {module_name}`, which is gone"
        if hydra_entry(module_name) is not None or module_name == "pytest":
            continue
        if spec.submodule_search_locations:  # a package runs its __main__
            spec = importlib.util.find_spec(f"{module_name}.__main__")
        source_path = spec.origin if spec else None
        assert source_path is not None
        source = Path(source_path).read_text()
        for flag in (a.split("=")[0] for a in arguments if a.startswith("--")):
            assert f'"{flag}"' in source, f"`python -m {module_name}` takes no {flag}"
        checked += 1
    assert checked > 5
