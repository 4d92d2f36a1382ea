"""``hcmeasure`` entry point: one module per subcommand, each with
``add_arguments(parser)`` and ``run(args) -> int``. Every subcommand takes ``--verbose``:
without it, the known notices of other packages are kept off the console
(:mod:`hcmeasure.known_warnings`), so that a run prints only hcmeasure's own lines."""
from __future__ import annotations

import argparse
import importlib
import sys

from ..known_warnings import quiet_cli
from .common import CLIError

#: subcommand -> (module under hcmeasure.cli, one-line help)
SUBCOMMANDS = {
    "doctor": ("doctor", "print versions, Detectron2 install route, CUDA, data and weights found"),
    "convert-hc18": ("convert_hc18", "convert HC18 annotations to a COCO instances JSON"),
    "fit": ("fit", "fit ellipses to existing masks/outlines and write measurements.csv"),
    "predict": ("predict", "measure HC on an image or a folder with a Mask R-CNN model"),
    "evaluate": ("evaluate", "compare measurements.csv with HC18 references (MAD, Dice, Hausdorff)"),
    "report": ("report", "write a self-contained HTML report (thumbnails, HC, GA, flags) for a predict run"),
    "segment": ("segment", "class-index masks, overlays and the BKAI-IGH RLE CSV with a semantic model"),
    "export-onnx": ("export_onnx", "export a semantic-segmentation model to ONNX (for onnxruntime and web/)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hcmeasure",
        description="Fetal head circumference measurement on 2D ultrasound (Detectron2 plugin).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod = importlib.import_module(f"hcmeasure.cli.{module}")
        mod.add_arguments(p)
        p.add_argument("--verbose", action="store_true",
                       help="also show the warnings of other packages (Detectron2, torch, fvcore) "
                            "that hcmeasure hides as known")
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with quiet_cli(args.verbose):
            return int(args._run(args) or 0)
    except CLIError as exc:
        print(f"hcmeasure {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hcmeasure {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
