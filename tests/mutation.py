"""Damaged messages for decoder fuzz tests: what a flipped byte or a cut-off read makes of a valid one."""

from __future__ import annotations

import contextlib

from hypothesis import strategies as st

from fleetlog.events import InvalidEvent, decode


def decode_mutated(data: st.DataObject, message: bytes) -> None:
    """Overwrite 1-8 bytes of ``message`` and cut it short (both drawn), then decode it.

    Only ``InvalidEvent`` may come out: anything else propagates and fails the calling test.
    """
    buf = bytearray(message)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(buf)))
    with contextlib.suppress(InvalidEvent):
        decode(bytes(buf[:cut]))
