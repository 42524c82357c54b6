"""Saved videos read in bounded chunks: their SHA-256 (remembered), base64 text and parts.

The video listing and the player's results carry each video's digest, so a client can check
that the bytes it read are the saved file. A digest is computed once per file version (path,
size and modification time) per process, in a worker thread.

A video resource's base64 text is encoded straight from disk, 3 MiB at a time (a multiple of 3
bytes, so the chunks' encodings join without padding in between): the file's raw bytes are never
all in memory at once. The player reads a video in parts of `PART_BYTES` instead, one bounded
message each.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

CHUNK_BYTES = 1 << 20
# Base64 turns every 3 bytes into 4 characters: a chunk of a multiple of 3 encodes on its own.
BASE64_CHUNK_BYTES = 3 << 20
# One part of a video as the player reads it: about 5.6 MB of base64 per resources/read.
PART_BYTES = 4 << 20


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


def base64_of_file(path: Path) -> str:
    """The base64 text of a whole file, encoded from disk in 3 MiB chunks (OSError if unreadable).

    The chunks' encodings fill one buffer of the text's final length, which then becomes the
    `str`: the raw file is never in memory, and the text twice only while it is made a `str`
    (Python has no way to build a large `str` without that copy: growing one with `+=` is
    copy-free only once CPython has specialised the loop, so a short loop copies every time).
    """
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        text = bytearray(4 * -(-size // 3))
        chunk = memoryview(bytearray(BASE64_CHUNK_BYTES))
        at = 0
        remaining = size
        while remaining:
            wanted = min(BASE64_CHUNK_BYTES, remaining)
            if file.readinto(chunk[:wanted]) != wanted:
                raise OSError(f"{path} got shorter while it was read")
            encoded = binascii.b2a_base64(chunk[:wanted], newline=False)
            text[at : at + len(encoded)] = encoded
            at += len(encoded)
            remaining -= wanted
    return text.decode("ascii")


def part_count(size: int, part_bytes: int = PART_BYTES) -> int:
    """How many parts a file of ``size`` bytes has (an empty file has one, empty)."""
    return max(1, -(-size // part_bytes))


class PartOutOfRange(IndexError):
    """A part index outside 0..count-1."""

    def __init__(self, index: int, count: int) -> None:
        super().__init__(f"part {index} of a file of {count} parts")
        self.index = index
        self.count = count


@dataclass(frozen=True)
class Part:
    """One part of a file: where it lies in it, its bytes and their SHA-256."""

    index: int
    count: int
    offset: int
    file_size: int
    data: bytes
    sha256: str

    def base64(self) -> str:
        """The part's bytes as base64 text."""
        return binascii.b2a_base64(self.data, newline=False).decode("ascii")


def read_part(path: Path, index: int, part_bytes: int = PART_BYTES) -> Part:
    """Part ``index`` of a file (PartOutOfRange outside 0..count-1, OSError if unreadable)."""
    with path.open("rb") as file:
        file_size = os.fstat(file.fileno()).st_size
        count = part_count(file_size, part_bytes)
        if not 0 <= index < count:
            raise PartOutOfRange(index, count)
        offset = index * part_bytes
        file.seek(offset)
        data = file.read(min(part_bytes, file_size - offset))
    return Part(
        index=index,
        count=count,
        offset=offset,
        file_size=file_size,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
    )
