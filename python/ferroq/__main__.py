"""Command line: ``python -m ferroq demo`` (convert a model, compare with float) and
``python -m ferroq info`` (version, kernel paths, threads)."""

from __future__ import annotations

import argparse
import platform
import sys
from typing import List, Optional

import numpy as np

from . import __version__, _core, backend, get_num_threads, supported_backends


def info() -> None:
    print(f"ferroq {__version__}")
    print(f"kernel path in use: {backend()}")
    print(f"kernel paths supported here: {', '.join(supported_backends())}")
    note = _core.backend_note()
    if note:
        print(f"note: {note}")
    print(f"threads: {get_num_threads()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()} {platform.system()}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ferroq", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="train a small float model, convert it to int8, print accuracy and speed")
    sub.add_parser("info", help="print the version, kernel paths and thread count")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import main as demo

        demo()
    else:
        info()
    return 0


if __name__ == "__main__":
    sys.exit(main())
