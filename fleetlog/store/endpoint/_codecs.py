"""HTTP compression for the endpoint: request bodies in, response bodies out.

Decoding copes with what clickhouse-connect sends (one frame per insert block, so many
concatenated frames) and bounds how much one step may inflate; encoding produces a
single frame, the only thing clickhouse-connect's streaming lz4/zstd readers accept.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Final, Protocol

import lz4.frame

from fleetlog.store.endpoint._protocol import ClickHouseError

try:  # Python 3.14 ships zstd; before that clickhouse-connect depends on the backport.
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the interpreter
    from backports import zstd  # type: ignore[import-not-found,no-redef]


class _Decompressor(Protocol):
    eof: bool
    needs_input: bool
    unused_data: bytes

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _ZlibDecompressor:
    """zlib's decompressobj behind the lz4/zstd interface (``needs_input`` instead of a tail)."""

    def __init__(self, wbits: int) -> None:
        self._zlib = zlib.decompressobj(wbits=wbits)
        self._tail = b""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        out = self._zlib.decompress(self._tail + data, max(max_length, 0))
        self._tail = self._zlib.unconsumed_tail
        return out

    @property
    def needs_input(self) -> bool:
        return not self._tail

    @property
    def eof(self) -> bool:
        return self._zlib.eof

    @property
    def unused_data(self) -> bytes:
        return self._zlib.unused_data


_DECODERS: Final[dict[str, Callable[[], _Decompressor]]] = {
    "lz4": lz4.frame.LZ4FrameDecompressor,
    "zstd": zstd.ZstdDecompressor,
    "gzip": lambda: _ZlibDecompressor(47),
    "x-gzip": lambda: _ZlibDecompressor(47),
    "deflate": lambda: _ZlibDecompressor(15),
}
_DECODED_CHUNK: Final = 4 << 20


def decode_body(chunks: Iterator[bytes], encoding: str | None, limit: int) -> Iterator[bytes]:
    """Undo ``Content-Encoding``, frame after frame, at most 4 MiB of output at a time.

    clickhouse-connect compresses every insert block as its own frame, so a body is a
    concatenation of frames: one decompressor per frame, restarted on ``unused_data``.
    Output is bounded per step and in total: a body that decodes to more than ``limit``
    bytes (a decompression bomb, or just too much) fails with 413 as soon as the running
    total passes it, so neither memory nor the insert's spool file ever holds more.
    """
    total = 0
    for out in _decoded(chunks, (encoding or "identity").strip().lower()):
        total += len(out)
        if total > limit:
            message = f"Request body is too large: more than {limit} bytes after decompression; send smaller inserts"
            raise ClickHouseError(229, message)
        yield out


def _decoded(chunks: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    if encoding == "identity":
        yield from chunks
        return
    factory = _DECODERS.get(encoding)
    if factory is None:
        raise ClickHouseError(89, f"Unknown HTTP Content-Encoding {encoding[:32]!r}")
    decoder = factory()
    for chunk in chunks:
        while True:
            try:
                out = decoder.decompress(chunk, _DECODED_CHUNK)
            except Exception as exc:
                raise ClickHouseError(271, f"Cannot decompress {encoding} request body: {exc}") from None
            chunk = b""
            if out:
                yield out
            if decoder.eof:
                chunk, decoder = decoder.unused_data, factory()
                if not chunk:
                    break
            elif decoder.needs_input or not out:
                break


def choose_encoding(accept_encoding: str | None) -> str | None:
    """The response Content-Encoding: lz4 first, as it costs least on a loopback link."""
    offered = {item.split(";")[0].strip().lower() for item in (accept_encoding or "").split(",")}
    return next((enc for enc in ("lz4", "zstd", "gzip", "deflate") if enc in offered), None)


class Encoder:
    """Incremental single-frame response compression (clients decode one frame only)."""

    def __init__(self, encoding: str, level: int = 3) -> None:
        self._encoding = encoding
        if encoding == "lz4":
            self._lz4 = lz4.frame.LZ4FrameCompressor()
            self._pending = self._lz4.begin()
        elif encoding == "zstd":
            self._zstd = zstd.ZstdCompressor(level=level)
        else:
            self._zlib = zlib.compressobj(level=level, wbits=31 if encoding == "gzip" else 15)

    def compress(self, data: bytes | memoryview) -> bytes:
        if self._encoding == "lz4":
            out, self._pending = self._pending + self._lz4.compress(data), b""
            return out
        if self._encoding == "zstd":
            return self._zstd.compress(data)
        return self._zlib.compress(data)

    def flush(self) -> bytes:
        if self._encoding == "lz4":
            return self._pending + self._lz4.flush()
        if self._encoding == "zstd":
            return self._zstd.flush()
        return self._zlib.flush()


def compress_all(data: bytes | memoryview, encoding: str) -> bytes:
    """A whole response body as one frame."""
    if encoding == "lz4":
        return lz4.frame.compress(data)
    encoder = Encoder(encoding)
    return encoder.compress(data) + encoder.flush()
