"""The ``engagelab`` command line: a thin shell over the library.

Every command takes ``--format table|json``; errors print one line and exit non-zero
(``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from engagelab.cli._common import EXIT_ERROR, EXIT_USAGE
from engagelab.errors import EngagelabError

__all__ = ["main"]

#: The modules that add subcommands, one per command group: each has ``register(subparsers, common, wsopt)`` adding
#: parsers whose ``func(args) -> int`` does the work. Keep their top-level imports light.
PLUGINS = (
    "engagelab.cli.workspace",
    "engagelab.cli.segments",
    "engagelab.cli.demo",
    "engagelab.cli.experiments",
    "engagelab.cli.campaigns",
    "engagelab.cli.channels",
    "engagelab.cli.jobs",
    "engagelab.cli.besttime",
    "engagelab.cli.retention",
)

#: The subcommands each plug-in adds, with their one-line help: a command line imports
#: only the plug-in it names (importing all of them costs seconds: scipy, statsmodels).
PLUGIN_COMMANDS = {
    "init": ("engagelab.cli.workspace", "create a workspace"),
    "ingest": ("engagelab.cli.workspace", "validate and append a file of events or profiles"),
    "simulate": ("engagelab.cli.workspace", "simulate users and behaviour into a workspace"),
    "sql": ("engagelab.cli.workspace", "run read-only SQL (DuckDB dialect) over events and profiles"),
    "segment": ("engagelab.cli.segments", "count, save or show the SQL of a segment"),
    "demo": ("engagelab.cli.demo", "the main job: workspace, simulated world, campaigns, reports"),
    "experiment": ("engagelab.cli.experiments", "design and analyse A/B/n experiments"),
    "campaign": ("engagelab.cli.campaigns", "save, plan, send and report campaigns"),
    "channel": ("engagelab.cli.channels", "channels, message previews and the client inbox"),
    "run": ("engagelab.cli.jobs", "run a job for one logical date (the job entry point)"),
    "jobs": ("engagelab.cli.jobs", "add, list, inspect, pause and export scheduled jobs"),
    "scheduler": ("engagelab.cli.jobs", "the embedded scheduler (long-running)"),
    "besttime": ("engagelab.cli.besttime", "fit and evaluate per-user best send times"),
    "retention": ("engagelab.cli.retention", "cohort retention and message-label cohorts"),
}


def _version() -> str:
    """The installed distribution's version (no import of the package face)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("engagelab")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``: looks the version up only when asked (``--help`` stays cheap)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help=str(kwargs.get("help", "")))  # fmt: skip

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(f"engagelab {_version()}")
        parser.exit(0)


# ----------------------------------------------------------------------------- parser
def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``engagelab`` command.

    With ``command`` (the first word of a command line) only the plug-in that adds that
    command is imported; other plug-in commands appear with their help text only.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--format", choices=["table", "json"], default="table", help="output format"
    )
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    wsopt = argparse.ArgumentParser(add_help=False)
    wsopt.add_argument(
        "--workspace",
        "-w",
        default=os.environ.get("ENGAGELAB_WORKSPACE"),
        help="workspace folder (default: $ENGAGELAB_WORKSPACE)",
    )

    p = argparse.ArgumentParser(
        prog="engagelab", description="Design, run and analyse messaging campaigns."
    )
    p.add_argument("--version", action=_VersionAction, help="show the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    if command is None:
        wanted = list(PLUGINS)
    elif command in PLUGIN_COMMANDS:
        wanted = [PLUGIN_COMMANDS[command][0]]
    else:
        wanted = []
    for module in wanted:
        importlib.import_module(module).register(sub, common, wsopt)
    if command is not None:
        loaded = set(sub.choices)
        for name, (_module, help_) in PLUGIN_COMMANDS.items():
            if name not in loaded:
                sub.add_parser(name, help=help_)  # placeholder: listed in --help only
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), "")
    parser = build_parser(first)
    args = parser.parse_args(argv)
    if (
        getattr(args, "command", None) != "init"
        and hasattr(args, "workspace")
        and args.command != "demo"
        and not args.workspace
    ):
        parser.exit(
            EXIT_USAGE,
            "engagelab: error: no workspace: pass --workspace PATH or set ENGAGELAB_WORKSPACE\n",
        )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except EngagelabError as exc:
        if args.debug:
            raise
        print(f"engagelab: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, KeyboardInterrupt) as exc:
        if args.debug:
            raise
        print(f"engagelab: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
