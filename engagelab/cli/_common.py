"""What every command module shares: output, opening the workspace, small parsers."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from engagelab.errors import ValidationError
from engagelab.validate import check_datetime

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "emit",
    "load_segment",
    "open_workspace",
    "pair",
    "parse_at",
    "progress",
]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command cut off by `| head`


# ----------------------------------------------------------------------------- output
def emit(obj: Any, fmt: str) -> None:
    """Print a DataFrame, dict or scalar as a table or JSON."""
    # pandas is imported only by the commands that produce DataFrames, never for this check
    pd: Any = sys.modules.get("pandas")
    is_frame = pd is not None and isinstance(obj, pd.DataFrame)
    if fmt == "json":
        if is_frame:
            obj = json.loads(obj.to_json(orient="records", date_format="iso"))
        print(json.dumps(obj, indent=2, default=str, ensure_ascii=False))
        return
    if is_frame:
        if obj.empty:
            print("(no rows)")
        else:
            with pd.option_context(
                "display.max_rows", 200, "display.max_columns", 50, "display.width", 200
            ):
                print(obj.to_string(index=False))
    elif isinstance(obj, dict):
        width = max((len(str(k)) for k in obj), default=0)
        for k, v in obj.items():
            if isinstance(v, dict):
                print(f"{k}:")
                for k2, v2 in v.items():
                    print(f"  {k2}: {v2}")
            else:
                print(f"{str(k).ljust(width)}  {v}")
    else:
        print(obj)


def open_workspace(args: argparse.Namespace) -> Any:
    """The workspace named by ``--workspace`` (or ``$ENGAGELAB_WORKSPACE``)."""
    from engagelab.workspace import Workspace

    return Workspace.open(args.workspace)


def parse_at(text: str | None) -> datetime | None:
    """``--at`` as a UTC instant (None when not given)."""
    return check_datetime("--at", text, allow_none=True)


def load_segment(args: argparse.Namespace, ws: Any) -> Any:
    """The segment given by exactly one of ``--spec``, ``--json`` or ``--name``."""
    given = [x for x in (args.spec, args.json, args.name) if x]
    if len(given) != 1:
        raise ValidationError(
            "segment", None, "give exactly one of --spec FILE, --json TEXT, --name SAVED"
        )
    if args.name:
        return ws.load_segment(args.name)
    from engagelab.segments import Segment

    if args.json:
        return Segment.from_json(args.json)
    path = Path(args.spec)
    if not path.is_file():
        raise ValidationError("--spec", str(path), "does not exist")
    from engagelab.validate import load_spec_file

    return Segment.from_dict(load_spec_file(path, f"--spec {path}"))


def pair(flag: str, text: str) -> tuple[str, str]:
    """``name=value`` split in two (``flag`` names the option in errors)."""
    if "=" not in text:
        raise ValidationError(flag, text, "must look like name=value")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def progress(message: str) -> None:
    """Print a progress line to stderr."""
    print(message, file=sys.stderr, flush=True)
