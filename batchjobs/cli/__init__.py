"""The ``batchjobs`` command: a click group that only wires the subcommands.

Each subcommand's module is imported when that command runs, not before: ``batchjobs
status`` never loads Celery, the worker or the job-file parser.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

#: Command name → (module of ``batchjobs.cli``, attribute).
COMMANDS: dict[str, tuple[str, str]] = {
    **{name: ("jobs", attr) for name, attr in (
        ("submit", "submit"), ("wait", "wait"), ("list", "list_jobs"),
        ("hold", "hold"), ("release", "release"), ("cancel", "cancel"), ("rerun", "rerun"),
        ("history", "history"), ("alerts", "list_alerts"), ("run-client", "run_client"))},
    "status": ("status", "status"),
    "attempts": ("attempts", "list_attempts"), "log": ("attempts", "show_log"),
    "worker": ("servers", "worker"), "server": ("servers", "server"), "db": ("db", "db"),
    "group": ("groups", "group"), "user": ("users", "user"),
    "housekeeper": ("housekeeper", "housekeeper"),
    # The housekeeper's former name, kept for the units and scripts that use it.
    "coordinator": ("housekeeper", "housekeeper"),
    "demo": ("demo", "demo"), "web": ("web", "web"),
    "job": ("job", "job"), "cleanup": ("cleanup", "cleanup"),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, attr = COMMANDS[cmd_name]
        command: Any = getattr(importlib.import_module(f".{module}", __name__), attr)
        return command if command.name == cmd_name else _renamed(command, cmd_name)


def _renamed(command: click.Command, name: str) -> click.Command:
    alias = click.Command(name, callback=command.callback, params=command.params,
                          help=command.help, context_settings=command.context_settings,
                          add_help_option=command.add_help_option)
    return alias


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="batchjobs")
def cli() -> None:
    """Batch jobs with dependent tasks on Celery batch servers.

    \b
    Examples:
      batchjobs demo                       # the JOB 1 walkthrough, no server needed
      batchjobs worker --server Batch1 --groups default --threads 2
      batchjobs submit job.yaml            # prints the job id
      batchjobs wait 1 && batchjobs status 1 --json
    """


def main() -> None:
    cli(prog_name="batchjobs")
