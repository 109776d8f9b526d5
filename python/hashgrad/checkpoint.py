"""Safetensors files without the safetensors package: writing a layout's flat vector (in
vector order, which the node reads as the layout's order) and loading a node's checkpoint
(``GET /train/checkpoint`` or ``hashgrad checkpoint``) into named numpy arrays."""

from __future__ import annotations

import json
import struct
from typing import Dict, List, Sequence, Tuple

import numpy as np

#: Largest header accepted when loading (the node writes a few KiB).
MAX_HEADER = 100_000_000


def encode_safetensors(layout: Sequence[Tuple[str, Sequence[int]]], values: np.ndarray,
                       metadata: Dict[str, str] | None = None) -> bytes:
    """``values`` cut into ``layout``'s tensors, written in that order."""
    flat = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, shape in layout:
        n = int(np.prod(shape)) if len(shape) else 1
        header[name] = {"dtype": "F32", "shape": [int(d) for d in shape],
                        "data_offsets": [offset * 4, (offset + n) * 4]}
        offset += n
    if offset != flat.size:
        raise ValueError(f"the layout holds {offset} values, the vector {flat.size}")
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + flat.tobytes()


def load_safetensors(data: bytes) -> Tuple[Dict[str, np.ndarray], Dict[str, str], List[str]]:
    """Named float32 arrays, the ``__metadata__`` and the names in data order."""
    if len(data) < 8:
        raise ValueError("not a safetensors file: shorter than its header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER or 8 + n > len(data):
        raise ValueError("not a safetensors file: bad header length")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {}) or {}
    body = memoryview(data)[8 + n:]
    tensors: Dict[str, np.ndarray] = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError(f"tensor {name} is {info['dtype']}, not F32")
        start, end = info["data_offsets"]
        if not 0 <= start <= end <= len(body):
            raise ValueError(f"tensor {name}: offsets outside the file")
        array = np.frombuffer(body[start:end], dtype="<f4").astype(np.float32)
        tensors[name] = array.reshape(info["shape"])
    order = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    return tensors, metadata, order


def load_checkpoint(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """A checkpoint file's tensors and metadata (round, params_hash, rule, optimizer)."""
    with open(path, "rb") as f:
        tensors, metadata, _ = load_safetensors(f.read())
    return tensors, metadata
