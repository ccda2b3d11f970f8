"""The ``engagelab`` command line: a thin shell over the library.

Every command takes ``--format table|json``; errors print one line to stderr and exit
non-zero (``--debug`` shows the traceback). With ``--format json`` the error is a JSON
object on stderr: ``{"error": {"type": ..., "message": ..., "field": ..., "value": ...,
"allowed": ...}}``. Output cut short by a closed pipe (``| head``) ends quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from engagelab.cli._common import EXIT_BROKEN_PIPE, EXIT_ERROR, EXIT_USAGE
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
    "engagelab.cli.dispatch",
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
    "sql": (
        "engagelab.cli.workspace",
        "run read-only SQL (DuckDB dialect) over events and profiles",
    ),
    "segment": ("engagelab.cli.segments", "count, save or show the SQL of a segment"),
    "demo": ("engagelab.cli.demo", "the main job: workspace, simulated world, campaigns, reports"),
    "experiment": ("engagelab.cli.experiments", "design and analyse A/B/n experiments"),
    "campaign": ("engagelab.cli.campaigns", "save, plan, send and report campaigns"),
    "dispatch": ("engagelab.cli.dispatch", "release queued messages when due (long-running)"),
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


#: Library wording in error messages and its command-line equivalent.
CLI_WORDING: tuple[tuple[str, str], ...] = (
    (r"Workspace\.create\(('[^']*'|\"[^\"]*\")\)", r"engagelab init \1"),
    (r"Workspace\.open\(('[^']*'|\"[^\"]*\")\)", r"--workspace \1"),
    (r"\bforce=True\b", "--force"),
    (r"mapping=\{'([^']*)': '([^']*)'\}", r"--map \1=\2"),
    (r"\bpass format= one of", "pass --input-format one of"),
    (r"\bformat='(csv|parquet|jsonl)'", r"--input-format \1"),
    (r"^state_url ==", "--state-url =="),
    (r"^ts_unit ==", "--ts-unit =="),
    (r"^date_format ==", "--date-format =="),
    (r"^dedupe_key ==", "--dedupe-key =="),
    (r"^encoding ==", "--encoding =="),
    (r"\bencoding='([^']*)'", r"--encoding \1"),
    (r"\bdate_format='([^']*)'", r"--date-format '\1'"),
    (r"replace=True / --replace", "--replace"),
)


def cli_wording(message: str) -> str:
    """``message`` with library calls and keyword arguments named as commands and options.

    >>> cli_wording("ws is not a workspace; create one with Workspace.create('ws')")
    "ws is not a workspace; create one with engagelab init 'ws'"
    """
    for pattern, repl in CLI_WORDING:
        message = re.sub(pattern, repl, message)
    return message


def _wants_json(argv: Sequence[str]) -> bool:
    for i, a in enumerate(argv):
        if a == "--format=json" or (
            a == "--format" and i + 1 < len(argv) and argv[i + 1] == "json"
        ):
            return True
    return False


def report_error(exc: BaseException | str, as_json: bool) -> None:
    """Print one error line (or one JSON object) to stderr."""
    if isinstance(exc, BaseException):
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, EngagelabError):
            text = f"{type(exc).__name__}: {text}"
        kind = type(exc).__name__
    else:
        text, kind = exc, "UsageError"
    text = cli_wording(text)
    if as_json:
        err: dict[str, Any] = {"type": kind, "message": text}
        for key in ("field", "value", "allowed"):
            if hasattr(exc, key):
                err[key] = getattr(exc, key)
        if isinstance(err.get("field"), str):
            err["field"] = cli_wording(err["field"] + " ==").removesuffix(" ==")
        print(json.dumps({"error": err}, default=str, ensure_ascii=False), file=sys.stderr)
    else:
        print(f"engagelab: error: {text}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as JSON under ``--format json``."""

    def error(self, message: str) -> NoReturn:
        if _wants_json(sys.argv[1:] if _ARGV is None else _ARGV):
            report_error(f"{self.prog}: {message}", True)
            self.exit(EXIT_USAGE)
        super().error(message)


_ARGV: list[str] | None = None


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

    p = _Parser(prog="engagelab", description="Design, run and analyse messaging campaigns.")
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
    global _ARGV
    argv = list(sys.argv[1:] if argv is None else argv)
    _ARGV = argv
    try:
        return _main(argv)
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, and keep Python's final flush
        # of stdout from complaining about the closed pipe
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: list[str]) -> int:
    first = next((a for a in argv if not a.startswith("-")), "")
    parser = build_parser(first)
    args = parser.parse_args(argv)
    as_json = getattr(args, "format", None) == "json"
    if (
        getattr(args, "command", None) != "init"
        and hasattr(args, "workspace")
        and args.command != "demo"
        and not args.workspace
    ):
        report_error("no workspace: pass --workspace PATH or set ENGAGELAB_WORKSPACE", as_json)
        return EXIT_USAGE
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except BrokenPipeError:
        raise
    except EngagelabError as exc:
        if args.debug:
            raise
        report_error(exc, as_json)
        return EXIT_ERROR
    except (OSError, KeyboardInterrupt, UnicodeError, RecursionError, MemoryError) as exc:
        if args.debug:
            raise
        report_error(exc, as_json)
        return EXIT_ERROR
    except Exception as exc:  # a bug: still one line, with the way to see more
        if args.debug:
            raise
        report_error(
            f"unexpected {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''} "
            "(rerun with --debug for the traceback)",
            as_json,
        )
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
