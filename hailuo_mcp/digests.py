"""SHA-256 of saved videos, read in chunks and remembered while the file is unchanged.

The video listing and the player's results carry each video's digest, so a client can check
that the bytes it read are the saved file. A digest is computed once per file version (path,
size and modification time) per process, in a worker thread.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import anyio.to_thread

CHUNK_BYTES = 1 << 20


async def sha256_of(path: Path) -> str:
    """The hex SHA-256 of the file at ``path`` (OSError if it cannot be read)."""
    return await anyio.to_thread.run_sync(sha256_blocking, path)


def sha256_blocking(path: Path) -> str:
    """`sha256_of`, blocking the caller's thread."""
    stat = path.stat()
    return _sha256_of_version(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=512)
def _sha256_of_version(path: str, size: int, mtime_ns: int) -> str:
    # Size and mtime are part of the key only: a changed file is a new entry.
    return file_sha256(Path(path))


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
