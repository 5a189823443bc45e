"""Paddle's combined parameter file (``.pdiparams``): read it into named records and write it back.

The file is the persistable variables of the program, sorted by name, each serialized as Paddle's
``SerializeToStream`` writes a dense tensor::

    uint32 version (0) | uint64 lod_level, then per level: uint64 byte size + size_t offsets
    uint32 tensor version (0) | int32 desc size | VarType.TensorDesc (data_type, dims) | raw data

Legalization edits this file when it edits the set of persistables (a zero-size RNN state that
Lite cannot load is dropped; explicit layer_norm Scale/Bias are added). Records keep their bytes
untouched, so a rewrite with the same records is byte-identical.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import numpy as np

from wherry.runtimes.errors import ModelError
from wherry.runtimes.paddle_model import PROTO_DTYPES, framework_proto

# VarType.Type values of the tensor element types (framework.proto)
# (runtimes.paddle_model.PROTO_DTYPES); numpy has no bfloat16: its raw bits are read as uint16, the same width
_DTYPES = {number: np.dtype("uint16" if name == "bfloat16" else name) for number, name in PROTO_DTYPES.items()}
_CODES = {v: k for k, v in _DTYPES.items() if PROTO_DTYPES[k] != "bfloat16"}


@dataclass
class Record:
    name: str
    data_type: int            # VarType.Type
    dims: List[int]
    raw: bytes                # the whole serialized record

    @property
    def numel(self) -> int:
        return int(np.prod(self.dims)) if self.dims else 1


def _parse_one(buf: bytes, pos: int):
    framework_pb2 = framework_proto()

    start = pos
    pos += 4                                             # version
    (lod_level,) = struct.unpack_from("<Q", buf, pos)
    pos += 8
    for _ in range(lod_level):
        (size,) = struct.unpack_from("<Q", buf, pos)
        pos += 8 + size
    pos += 4                                             # tensor version
    (desc_size,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    desc = framework_pb2.VarType.TensorDesc()
    desc.ParseFromString(buf[pos:pos + desc_size])
    pos += desc_size
    dims = list(desc.dims)
    itemsize = np.dtype(_DTYPES.get(desc.data_type, np.uint8)).itemsize
    numel = int(np.prod(dims)) if dims else 1
    pos += numel * itemsize
    if pos > len(buf):
        raise ModelError("the parameter file ends inside a tensor", "the model files are truncated; export again")
    return desc.data_type, dims, buf[start:pos], pos


def read(params_file: Path, names: Sequence[str]) -> List[Record]:
    """The records of ``params_file``; ``names`` are the program's persistables (any order)."""
    buf = Path(params_file).read_bytes()
    records, pos = [], 0
    for name in sorted(names):
        if pos >= len(buf):
            raise ModelError(f"the parameter file {params_file} has no data for {name}",
                             "the parameter file does not belong to this program")
        data_type, dims, raw, pos = _parse_one(buf, pos)
        records.append(Record(name, data_type, dims, raw))
    if pos != len(buf):
        raise ModelError(f"the parameter file {params_file} holds more tensors than the program's persistables",
                         "the parameter file does not belong to this program")
    return records


def make(name: str, value: np.ndarray) -> Record:
    """A new record holding ``value`` (no LoD)."""
    framework_pb2 = framework_proto()

    value = np.ascontiguousarray(value)
    desc = framework_pb2.VarType.TensorDesc()
    desc.data_type = _CODES[value.dtype]
    desc.dims.extend(value.shape)
    blob = desc.SerializeToString()
    raw = struct.pack("<IQ", 0, 0) + struct.pack("<Ii", 0, len(blob)) + blob + value.tobytes()
    return Record(name, desc.data_type, list(value.shape), raw)


def write(params_file: Path, records: Sequence[Record]) -> None:
    """Write records in Paddle's order (sorted by name)."""
    Path(params_file).write_bytes(b"".join(r.raw for r in sorted(records, key=lambda r: r.name)))
