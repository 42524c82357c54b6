"""Rules of ``POST /api/ephemeral_resource`` (PiAPI's file upload).

``file_name`` is at most 128 characters with a supported extension; ``file_data`` is base64,
optionally behind a ``data:<type>;base64,`` prefix, and decodes to at most 10 MB.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

# The client keeps its own copy of the 10 MB limit, on purpose (an independent reading).
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_FILE_NAME_CHARS = 128
CONTENT_TYPES: dict[str, str] = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "m4a": "audio/mp4",
}
# Base64 needs 4 characters per 3 bytes; anything longer cannot decode to <= 10 MB.
_MAX_ENCODED_CHARS = 4 * -(-MAX_UPLOAD_BYTES // 3)


class UploadError(ValueError):
    """The upload request breaks a rule; the message says which."""


@dataclass(frozen=True)
class Upload:
    """A decoded, accepted upload."""

    data: bytes
    extension: str
    content_type: str


def parse_upload(raw: bytes) -> Upload:
    """Validate and decode an upload request body.

    Raises:
        UploadError: the first rule the body breaks.
    """
    try:
        body = json.loads(raw)
    except ValueError:
        raise UploadError("request body must be valid JSON") from None
    if not isinstance(body, dict):
        raise UploadError("request body must be a JSON object")
    file_name = body.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        raise UploadError("file_name is required and must be a string")
    if len(file_name) > MAX_FILE_NAME_CHARS:
        raise UploadError(
            f"file_name must be at most {MAX_FILE_NAME_CHARS} characters (got {len(file_name)})"
        )
    stem, dot, extension = file_name.rpartition(".")
    extension = extension.lower()
    if not dot or not stem or extension not in CONTENT_TYPES:
        raise UploadError(
            f"file_name must end with a supported extension ({', '.join(CONTENT_TYPES)})"
        )
    file_data = body.get("file_data")
    if not isinstance(file_data, str) or not file_data:
        raise UploadError("file_data is required and must be a base64 string")
    if file_data.startswith("data:"):
        header, comma, file_data = file_data.partition(",")
        if not comma or not header.endswith(";base64"):
            raise UploadError("file_data data URI must be base64 encoded")
    encoded = "".join(file_data.split())
    if len(encoded) > _MAX_ENCODED_CHARS:
        raise UploadError("file exceeds the 10 MB limit")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise UploadError("file_data is not valid base64") from None
    if not data:
        raise UploadError("file_data decodes to an empty file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError("file exceeds the 10 MB limit")
    return Upload(data, extension, CONTENT_TYPES[extension])
