"""The word-language model of PyTorch's dynamic-quantization tutorial, run without torch.

The model: ``Embedding(ntoken, ninp)`` -> ``Dropout`` -> ``LSTM(ninp, nhid, nlayers, dropout)`` ->
``Dropout`` -> ``Linear(nhid, ntoken)``. Two ways to get a quantized ferroq copy of it:

- torch importable: the tutorial's torch model (random weights, seeded; nothing is downloaded) is
  quantized by torch's ``quantize_dynamic`` over ``{nn.LSTM, nn.Linear}`` and converted with one
  ``ferroq.torch.from_torch(..., custom={TorchRNNModel: RNNModel})`` call. ferroq's logits equal
  torch's quantized model's bit for bit.
- no torch (or ``--no-torch``): the same model is built as a ferroq float model and quantized by
  ``ferroq.quantization.quantize_dynamic``.

Either way the model is saved to one ``.safetensors`` file, and a second process in which torch
cannot be imported loads it and generates words (ids shown as ``w<id>``: the weights are random,
so is the text) from a seed word, greedily or by sampling. Run it from the repository root:

    python examples/word_language_model.py --words 20
    python examples/word_language_model.py --no-torch --temperature 0.8
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from typing import Any, List, Optional, Tuple

import numpy as np

import ferroq
from ferroq import nn

#: The tutorial's initialisation range for the embedding and the decoder.
INIT_RANGE = 0.1


class RNNModel(nn.Module):
    """The tutorial's ``LSTMModel`` in ferroq: encoder, dropout, LSTM, dropout, decoder.

    Built with no arguments it is empty (``from_torch`` fills in the converted children);
    with sizes it builds float layers initialised as the tutorial does.
    """

    def __init__(
        self,
        ntoken: Optional[int] = None,
        ninp: int = 64,
        nhid: int = 64,
        nlayers: int = 2,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if ntoken is None:
            return
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.encoder.weight = np.random.uniform(-INIT_RANGE, INIT_RANGE, self.encoder.weight.shape)
        self.decoder.bias = np.zeros(ntoken)
        self.decoder.weight = np.random.uniform(-INIT_RANGE, INIT_RANGE, self.decoder.weight.shape)

    def forward(self, input: Any, hidden: Any = None) -> Tuple[np.ndarray, Any]:
        """Word ids ``(T, B)`` -> logits ``(T, B, ntoken)`` and the LSTM state ``(h, c)``."""
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        return self.decoder(output), hidden


def torch_model_class() -> type:
    """The tutorial's torch model class (imports torch)."""
    import torch

    class TorchRNNModel(torch.nn.Module):
        def __init__(self, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float = 0.5) -> None:
            super().__init__()
            self.drop = torch.nn.Dropout(dropout)
            self.encoder = torch.nn.Embedding(ntoken, ninp)
            self.rnn = torch.nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
            self.decoder = torch.nn.Linear(nhid, ntoken)
            self.encoder.weight.data.uniform_(-INIT_RANGE, INIT_RANGE)
            self.decoder.bias.data.zero_()
            self.decoder.weight.data.uniform_(-INIT_RANGE, INIT_RANGE)

        def forward(self, input: Any, hidden: Any = None) -> Any:
            emb = self.drop(self.encoder(input))
            output, hidden = self.rnn(emb, hidden)
            output = self.drop(output)
            return self.decoder(output), hidden

    return TorchRNNModel


def quantized_torch_model(ntoken: int, ninp: int, nhid: int, nlayers: int, seed: int) -> Tuple[Any, type]:
    """The tutorial's torch model (seeded random weights), dynamically quantized by torch over
    ``{LSTM, Linear}``, and its class."""
    import torch

    torch.manual_seed(seed)
    cls = torch_model_class()
    model = cls(ntoken, ninp, nhid, nlayers).eval()
    quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8)
    return quantized, cls


def build(ntoken: int, ninp: int, nhid: int, nlayers: int, seed: int, use_torch: bool) -> nn.Module:
    """The quantized ferroq model: converted from torch's quantized model, or quantized by ferroq."""
    if use_torch:
        from ferroq.torch import from_torch

        quantized, cls = quantized_torch_model(ntoken, ninp, nhid, nlayers, seed)
        return from_torch(quantized, custom={cls: RNNModel})
    np.random.seed(seed)
    model = RNNModel(ntoken, ninp, nhid, nlayers).eval()
    return ferroq.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear})


def generate(model: nn.Module, seed_word: int, words: int, temperature: float, rng: np.random.Generator) -> List[int]:
    """``words`` word ids following ``seed_word``: the most likely next word (``temperature`` 0)
    or one sampled from ``softmax(logits / temperature)``."""
    softmax = nn.Softmax(dim=-1)
    hidden = None
    current = seed_word
    produced: List[int] = []
    for _ in range(words):
        logits, hidden = model(np.array([[current]], dtype=np.int64), hidden)
        scores = logits[0, 0]
        if temperature == 0:
            current = int(np.argmax(scores))
        else:
            probabilities = softmax(scores / np.float32(temperature)).astype(np.float64)
            current = int(rng.choice(scores.size, p=probabilities / probabilities.sum()))
        produced.append(current)
    return produced


def block_torch() -> None:
    """Makes ``import torch`` fail in this process (ImportError), as on a machine without it."""
    sys.modules["torch"] = None  # type: ignore[assignment]


def torch_importable() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def run_generation(path: str, seed_word: int, words: int, temperature: float, seed: int) -> str:
    """Loads the saved model in a new Python process where torch cannot be imported and returns
    the text it generates."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--generate-from",
        path,
        "--seed-word",
        str(seed_word),
        "--words",
        str(words),
        "--temperature",
        str(temperature),
        "--seed",
        str(seed),
    ]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab", type=int, default=1000, help="ntoken (the tutorial uses 33278)")
    parser.add_argument("--emsize", type=int, default=64, help="ninp (the tutorial uses 512)")
    parser.add_argument("--nhid", type=int, default=64, help="hidden size (the tutorial uses 256)")
    parser.add_argument("--nlayers", type=int, default=2, help="LSTM layers (the tutorial uses 5)")
    parser.add_argument("--words", type=int, default=20, help="how many words to generate")
    parser.add_argument("--seed-word", type=int, default=0, help="the id of the first word")
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy; > 0: sample")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights and the sampling")
    parser.add_argument("--out", help="where to save the model (default: a temporary file)")
    parser.add_argument("--no-torch", action="store_true", help="behave as if torch were not installed")
    parser.add_argument("--generate-from", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.generate_from:
        block_torch()
        model = ferroq.load(args.generate_from, custom_modules={"RNNModel": RNNModel})
        ids = generate(model, args.seed_word, args.words, args.temperature, np.random.default_rng(args.seed))
        print(" ".join(f"w{i}" for i in [args.seed_word] + ids))
        return

    if args.no_torch:
        block_torch()
    use_torch = torch_importable()
    model = build(args.vocab, args.emsize, args.nhid, args.nlayers, args.seed, use_torch)
    print(f"built with {'torch + from_torch' if use_torch else 'ferroq alone (no torch)'}:\n{model}")
    with tempfile.TemporaryDirectory() as scratch:
        path = args.out or os.path.join(scratch, "word_language_model.safetensors")
        ferroq.save(model, path)
        print(f"saved to {path} ({os.path.getsize(path)} bytes); generating in a process without torch:")
        print(run_generation(path, args.seed_word, args.words, args.temperature, args.seed), end="")


if __name__ == "__main__":
    main()
