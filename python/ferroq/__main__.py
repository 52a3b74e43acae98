"""Command line: ``python -m ferroq demo`` (convert a model, compare with float),
``python -m ferroq info`` (version, kernel paths, threads) and
``python -m ferroq convert model.pt out.safetensors`` (a pickled torch model to a ferroq file;
needs torch)."""

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
    conv = sub.add_parser("convert", help="convert a torch model saved with torch.save(model) to a .safetensors file")
    conv.add_argument("source", help="the torch model file (a whole pickled module; only load files you trust)")
    conv.add_argument("target", help="the .safetensors file to write")
    conv.add_argument(
        "--dtype",
        choices=["qint8", "float16", "none"],
        default="qint8",
        help="quantize_dynamic with this dtype after importing (default qint8; none keeps float layers)",
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import main as demo

        demo()
    elif args.command == "convert":
        convert(args.source, args.target, args.dtype)
    else:
        info()
    return 0


def convert(source: str, target: str, dtype: str) -> None:
    """torch model file -> ferroq tree (torch-quantized layers keep their int8 weights) -> file."""
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]  # optional: only this command needs it
    except ImportError:
        raise SystemExit("python -m ferroq convert needs torch to read the model file: pip install torch") from None
    from . import save
    from .quantization import quantize_dynamic
    from .torch import from_torch

    model = from_torch(torch.load(source, weights_only=False))
    if dtype != "none":
        model = quantize_dynamic(model, dtype=dtype)
    save(model, target)
    print(f"wrote {target}:\n{model}")


if __name__ == "__main__":
    sys.exit(main())
