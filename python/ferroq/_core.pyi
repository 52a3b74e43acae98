"""Type stubs for the Rust extension ``ferroq._core`` (hand-written; checked by mypy.stubtest)."""

from typing import Any, Optional, Sequence, Tuple, Union, final

import numpy as np
import numpy.typing as npt

__version__: str
MAX_THREADS: int
__all__ = [
    "MAX_THREADS",
    "ModelFile",
    "PackedEmbeddingTable",
    "PackedLinear",
    "PackedLinearFp16",
    "PackedRNN",
    "PackedStaticLinear",
    "__version__",
    "backend",
    "backend_note",
    "choose_qparams",
    "get_num_threads",
    "set_num_threads",
    "start_threads",
    "read_safetensors",
    "release_free_memory",
    "supported_backends",
    "write_safetensors",
]

def backend() -> str: ...
def supported_backends() -> list[str]: ...
def backend_note() -> Optional[str]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def start_threads() -> None: ...
def choose_qparams(min_val: float, max_val: float, qmin: int, qmax: int, reduce_range: bool) -> Tuple[float, int]: ...
@final
class PackedLinear:
    def __new__(
        cls,
        weight: npt.NDArray[np.int8],
        scales: npt.NDArray[np.float32],
        zero_points: npt.NDArray[np.int32],
        bias: Optional[npt.NDArray[np.float32]] = None,
        *,
        reduce_range: bool = True,
        gates: int = 1,
    ) -> "PackedLinear": ...
    @property
    def in_features(self) -> int: ...
    @property
    def out_features(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    reduce_range: bool
    def forward(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
    def try_forward(self, x: Any) -> Optional[npt.NDArray[np.float32]]: ...
    @staticmethod
    def from_file(
        file: "ModelFile",
        start: int,
        out_features: int,
        in_features: int,
        scales: npt.NDArray[np.float32],
        zero_points: npt.NDArray[np.int32],
        bias: Optional[npt.NDArray[np.float32]] = None,
        *,
        reduce_range: bool = True,
        gates: int = 1,
    ) -> "PackedLinear": ...
    @staticmethod
    def zeros(
        out_features: int,
        in_features: int,
        bias: Optional[npt.NDArray[np.float32]] = None,
        *,
        reduce_range: bool = True,
        gates: int = 1,
    ) -> "PackedLinear": ...
    def weight(self) -> npt.NDArray[np.int8]: ...

@final
class PackedLinearFp16:
    def __new__(
        cls,
        weight_bits: npt.NDArray[np.uint16],
        bias: Optional[npt.NDArray[np.float32]] = None,
        *,
        reduce_range: bool = True,
    ) -> "PackedLinearFp16": ...
    @property
    def in_features(self) -> int: ...
    @property
    def out_features(self) -> int: ...
    reduce_range: bool
    def forward(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
    def try_forward(self, x: Any) -> Optional[npt.NDArray[np.float32]]: ...
    def weight_bits(self) -> npt.NDArray[np.uint16]: ...

def release_free_memory() -> None: ...
def write_safetensors(
    path: str, tensors: list[tuple[str, str, list[int], bytes]], metadata: dict[str, str]
) -> None: ...
def read_safetensors(
    path: str, max_header_bytes: int
) -> tuple[list[tuple[str, str, list[int], int, int]], dict[str, str]]: ...
@final
class ModelFile:
    def __new__(cls, path: str) -> "ModelFile": ...
    def header(self, max_header_bytes: int) -> tuple[list[tuple[str, str, list[int], int, int]], dict[str, str]]: ...
    def read_into(self, start: int, out: npt.NDArray[np.uint8]) -> None: ...

@final
class PackedRNN:
    def __new__(
        cls,
        mode: str,
        input_size: int,
        hidden_size: int,
        proj_size: int,
        num_layers: int,
        bidirectional: bool,
        cells: Sequence[
            Tuple[
                Union[PackedLinear, PackedLinearFp16],
                Union[PackedLinear, PackedLinearFp16],
                Optional[Union[PackedLinear, PackedLinearFp16]],
            ]
        ],
        *,
        reduce_range: bool = True,
    ) -> "PackedRNN": ...
    reduce_range: bool
    def forward(
        self,
        x: npt.NDArray[np.float32],
        h0: Optional[npt.NDArray[np.float32]] = None,
        c0: Optional[npt.NDArray[np.float32]] = None,
        lengths: Optional[npt.NDArray[np.int64]] = None,
        batch_first: bool = False,
    ) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], Optional[npt.NDArray[np.float32]]]: ...
    def cell(
        self,
        x: npt.NDArray[np.float32],
        h: Optional[npt.NDArray[np.float32]] = None,
        c: Optional[npt.NDArray[np.float32]] = None,
    ) -> Tuple[npt.NDArray[np.float32], Optional[npt.NDArray[np.float32]]]: ...
    def try_forward(self, x: Any, hx: Any = None, batch_first: bool = False) -> Optional[Any]: ...
    def try_cell(self, x: Any, hx: Any = None) -> Optional[Any]: ...

@final
class PackedStaticLinear:
    def __new__(
        cls,
        weight: npt.NDArray[np.int8],
        scales: npt.NDArray[np.float32],
        zero_points: npt.NDArray[np.int32],
        per_channel: bool,
        bias: Optional[npt.NDArray[np.float32]] = None,
    ) -> "PackedStaticLinear": ...
    @staticmethod
    def from_file(
        file: ModelFile,
        start: int,
        out_features: int,
        in_features: int,
        scales: npt.NDArray[np.float32],
        zero_points: npt.NDArray[np.int32],
        per_channel: bool,
        bias: Optional[npt.NDArray[np.float32]] = None,
    ) -> "PackedStaticLinear": ...
    @property
    def in_features(self) -> int: ...
    @property
    def out_features(self) -> int: ...
    def weight(self) -> npt.NDArray[np.int8]: ...
    def forward(
        self,
        x: npt.NDArray[np.uint8],
        x_scale: float,
        x_zero_point: int,
        y_scale: float,
        y_zero_point: int,
        relu: bool = False,
    ) -> npt.NDArray[np.uint8]: ...

@final
class PackedEmbeddingTable:
    def __new__(
        cls,
        bits: int,
        data: npt.NDArray[np.uint8],
        dim: int,
        scales: npt.NDArray[np.float32],
        biases: npt.NDArray[np.float32],
    ) -> "PackedEmbeddingTable": ...
    @property
    def rows(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def bits(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    def values(self) -> npt.NDArray[np.uint8]: ...
    def lookup(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]: ...
    def bags(
        self,
        indices: npt.NDArray[np.int64],
        offsets: npt.NDArray[np.int64],
        per_sample_weights: Optional[npt.NDArray[np.float32]] = None,
        skip: Optional[int] = None,
    ) -> npt.NDArray[np.float32]: ...
