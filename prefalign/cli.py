"""`prefalign <command> ...`: the package's commands; the workflow itself runs through make and
Snakemake."""
from __future__ import annotations

import importlib
import sys

COMMANDS = {"plan": "prefalign.plan"}  # FLOPs, GPU-hours, memory and disk per stage of a config


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: prefalign {{{','.join(COMMANDS)}}} ...  (prefalign plan --help)", file=sys.stderr)
        return 2
    importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
