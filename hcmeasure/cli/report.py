"""``hcmeasure report OUT_DIR``: one self-contained HTML page for a predict run."""
from __future__ import annotations

from pathlib import Path

from .common import CLIError


def add_arguments(p):
    p.add_argument("run_dir", type=Path, metavar="OUT_DIR", help="output folder of 'hcmeasure predict'")
    p.add_argument("--output", type=Path, default=None, help="HTML file to write (default OUT_DIR/report.html)")
    p.add_argument("--group-by", default="pregnancy", metavar="COLUMN",
                   help="measurements.csv column whose equal values are one pregnancy: one growth chart "
                        "each (default: pregnancy)")


def run(args) -> int:
    from ..report import ReportError, write_report

    try:
        path = write_report(args.run_dir, args.output, group_column=args.group_by)
    except ReportError as exc:
        raise CLIError(str(exc)) from exc
    print(f"report -> {path}")
    return 0
