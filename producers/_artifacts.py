"""Files and images: blobs go to an artifact store, only their metadata through Kafka.

The store is any fsspec URL (a local directory by default, ``s3://bucket/prefix``
when configured).  Uploads run on a small thread pool so a slow store never holds
up the training loop; ``wait()`` is how ``flush()`` makes them durable.

An upload takes what it needs from its source before the call returns, so a script
may delete, rewrite or close it at once (a temporary directory, a checkpoint saved
again to the same path): streams and files up to ``IN_MEMORY_BYTES`` are read into
memory; bigger files are copied into a private staging folder (0700, under
``$FLEETLOG_HOME/staging``), uploaded from there, and the copy removed.  That copy
is the one cost on the caller's thread, as fast as the disk copies a file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import mimetypes
import os
import posixpath
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import fsspec

from fleetlog._private import private_dir

__all__ = ["IN_MEMORY_BYTES", "ArtifactInfo", "ArtifactStore", "check_name"]

log = logging.getLogger("fleetlog")

_CHUNK = 1 << 20
IN_MEMORY_BYTES = 16 << 20  # files up to this size are read at the call; bigger ones are staged on disk


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    name: str
    size: int
    sha256: str
    uri: str
    content_type: str

    def body(self, *, kind: str, description: str = "", inline: bytes = b"") -> dict:
        return {
            "name": self.name,
            "kind": kind,
            "size": self.size,
            "sha256": self.sha256,
            "uri": self.uri,
            "content_type": self.content_type,
            "description": description,
            "inline": inline,
            "time": time.time(),
        }


def check_name(name: str) -> str:
    """Artifact names are relative POSIX paths inside the run's folder: no escaping it."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"artifact name must be a non-empty str, got {name!r}")
    clean = posixpath.normpath(name.replace("\\", "/"))
    if clean.startswith(("/", "../")) or clean == ".." or len(clean.encode()) > 1024:
        raise ValueError(f"artifact name {name!r} must be a relative path inside the run (no '..', not absolute)")
    return clean


class ArtifactStore:
    """Where one experiment's runs put their files."""

    def __init__(self, url: str, *, workers: int = 2, staging_dir: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fleetlog-upload")
        self._pending: set[Future] = set()
        self._staging = staging_dir or Path(tempfile.gettempdir()) / f"fleetlog-staging-{os.getuid()}"

    def uri(self, run_id: str, name: str) -> str:
        return f"{self.url}/{run_id}/{name}"

    def upload(
        self, run_id: str, name: str, source: str | os.PathLike | IO[bytes], done: Callable[[ArtifactInfo], None]
    ) -> None:
        """Copy ``source`` into the store in the background, then call ``done`` with its metadata.

        Everything the upload reads is taken before this returns (see the module
        docstring): the caller may delete the file or close the stream right away.
        """
        name = check_name(name)
        if isinstance(source, (str, os.PathLike)):
            staged = self._snapshot(Path(source))
        elif hasattr(source, "read"):
            data = source.read()
            if not isinstance(data, bytes):
                raise TypeError("upload_file needs a binary stream (open(..., 'rb') or io.BytesIO)")
            staged = data
        else:
            raise TypeError(f"upload_file needs a path or a binary stream, got {type(source).__name__}")
        fut = self._pool.submit(self._copy, run_id, name, staged)
        self._pending.add(fut)
        fut.add_done_callback(lambda f: self._finished(f, done))

    def _snapshot(self, path: Path) -> bytes | Path:
        """The file's bytes, or a private copy of it when it is bigger than ``IN_MEMORY_BYTES``."""
        if not path.is_file():
            raise FileNotFoundError(f"upload_file: no such file {str(path)!r}")
        if path.stat().st_size <= IN_MEMORY_BYTES:
            data = path.read_bytes()
            if len(data) <= IN_MEMORY_BYTES:  # it may have grown since stat
                return data
        staged = private_dir(self._staging) / f"{uuid.uuid4().hex}{path.suffix}"
        shutil.copyfile(path, staged)  # copy_file_range/sendfile: in the kernel
        return staged

    def _copy(self, run_id: str, name: str, staged: bytes | Path) -> ArtifactInfo:
        target = f"{self.root}/{run_id}/{name}"
        try:
            self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
            digest, size = hashlib.sha256(), 0
            src: IO[bytes] = io.BytesIO(staged) if isinstance(staged, bytes) else open(staged, "rb")  # noqa: SIM115
            with src, self.fs.open(target, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    dst.write(chunk)
        finally:
            if isinstance(staged, Path):
                staged.unlink(missing_ok=True)
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return ArtifactInfo(name, size, digest.hexdigest(), self.uri(run_id, name), content_type)

    def _finished(self, fut: Future, done: Callable[[ArtifactInfo], None]) -> None:
        self._pending.discard(fut)
        exc = fut.exception()
        if exc is not None:
            log.warning("fleetlog upload failed: %s", exc)
            return
        done(fut.result())

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every upload started so far finished; False on timeout."""
        pending = set(self._pending)
        if not pending:
            return True
        _, not_done = wait_futures(pending, timeout=timeout)
        return not not_done

    def download(self, uri: str, output_file_path: str | os.PathLike) -> None:
        fs, path = fsspec.core.url_to_fs(uri)
        Path(output_file_path).parent.mkdir(parents=True, exist_ok=True)
        fs.get(path, str(output_file_path))
