"""Saved videos read in bounded chunks: base64 of a whole file, parts, and their memory."""

from __future__ import annotations

import base64
import hashlib
import tracemalloc
from pathlib import Path

import pytest

from hailuo_mcp.digests import (
    BASE64_CHUNK_BYTES,
    PartOutOfRange,
    base64_of_file,
    file_sha256,
    part_count,
    read_part,
    sha256_blocking,
)


def make_file(path: Path, size: int) -> Path:
    pattern = bytes(range(251))  # a prime length: chunk borders never line up with it
    path.write_bytes((pattern * (size // len(pattern) + 1))[:size])
    return path


@pytest.mark.parametrize(
    "size",
    [0, 1, 2, 3, BASE64_CHUNK_BYTES - 1, BASE64_CHUNK_BYTES, 2 * BASE64_CHUNK_BYTES + 2],
)
def test_a_files_base64_from_chunks_is_the_base64_of_the_whole(tmp_path: Path, size: int) -> None:
    video = make_file(tmp_path / "v.mp4", size)
    assert base64_of_file(video) == base64.b64encode(video.read_bytes()).decode()


def test_encoding_a_file_never_holds_the_raw_file(tmp_path: Path) -> None:
    video = make_file(tmp_path / "v.mp4", 10 * BASE64_CHUNK_BYTES)
    size = video.stat().st_size
    text_bytes = 4 * size // 3
    tracemalloc.start()
    try:
        text = base64_of_file(video)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(text) == text_bytes
    # The text twice while it becomes a str, and one chunk: the old read held the file, its
    # base64 bytes and the text (3.7 times the file; this is 2.7 times).
    assert peak < 2 * text_bytes + 3 * BASE64_CHUNK_BYTES < size + 2 * text_bytes, peak / size


@pytest.mark.parametrize(
    ("size", "part_bytes", "count"), [(0, 4, 1), (1, 4, 1), (4, 4, 1), (5, 4, 2), (12, 4, 3)]
)
def test_a_file_has_as_many_parts_as_it_takes_and_at_least_one(
    size: int, part_bytes: int, count: int
) -> None:
    assert part_count(size, part_bytes) == count


def test_parts_lie_end_to_end_and_hash_what_they_hold(tmp_path: Path) -> None:
    video = make_file(tmp_path / "v.mp4", 2 * 1000 + 7)
    parts = [read_part(video, index, part_bytes=1000) for index in range(3)]
    assert [(p.index, p.count, p.offset, len(p.data)) for p in parts] == [
        (0, 3, 0, 1000),
        (1, 3, 1000, 1000),
        (2, 3, 2000, 7),
    ]
    assert b"".join(p.data for p in parts) == video.read_bytes()
    for part in parts:
        assert part.sha256 == hashlib.sha256(part.data).hexdigest()
        assert base64.b64decode(part.base64()) == part.data
        assert part.file_size == 2007


@pytest.mark.parametrize("index", [-1, 3, 10**9])
def test_a_part_outside_the_file_says_how_many_there_are(tmp_path: Path, index: int) -> None:
    video = make_file(tmp_path / "v.mp4", 2007)
    with pytest.raises(PartOutOfRange) as caught:
        read_part(video, index, part_bytes=1000)
    assert (caught.value.index, caught.value.count) == (index, 3)


def test_a_digest_is_remembered_per_file_version(tmp_path: Path) -> None:
    video = make_file(tmp_path / "v.mp4", 5000)
    assert sha256_blocking(video) == file_sha256(video)
    video.write_bytes(b"another video")
    assert sha256_blocking(video) == hashlib.sha256(b"another video").hexdigest()
