"""Compact bytes for processor state: msgpack maps whose numpy arrays travel as raw buffers.

State is written to a changelog topic once per batch per key, so encoding must be
cheap and small; arrays are stored as dtype + little-endian bytes (one msgpack
extension type) instead of lists of Python numbers.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

__all__ = ["pack", "unpack"]

_ARRAY = 1


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        little = obj.dtype.newbyteorder("<")
        dtype = little.str.encode()
        return msgpack.ExtType(_ARRAY, bytes([len(dtype)]) + dtype + np.ascontiguousarray(obj, little).tobytes())
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__} in processor state")


def _ext(code: int, data: bytes) -> Any:
    if code != _ARRAY:
        return msgpack.ExtType(code, data)
    size = data[0]
    dtype = np.dtype(data[1 : 1 + size].decode())
    return np.frombuffer(data[1 + size :], dtype=dtype).copy()


def pack(data: dict[str, Any]) -> bytes:
    return msgpack.packb(data, default=_default, use_bin_type=True)


def unpack(raw: bytes) -> dict[str, Any]:
    return msgpack.unpackb(raw, ext_hook=_ext, raw=False, strict_map_key=False)
