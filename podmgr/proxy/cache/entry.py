"""One cached answer and its file format.

An answer is kept in the forms a client may ask for: the JSON body, and for streamable
routes the SSE body (ending with `[DONE]`) with the span of the usage chunk, so a replay
can leave that chunk out when the request did not ask for it (stream_options.include_usage).

File layout: magic `PMC1`, a 4-byte header length, the header (JSON: lengths, crc32,
expiry), then the JSON body and the SSE body. A file that is short, has another magic, or
fails its checksum does not decode (`None`): a miss, never an error.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import orjson

__all__ = ["CachedAnswer", "decode", "encode"]

MAGIC = b"PMC1"
_HEADER_LENGTH = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A complete 200 answer; `usage_span` is (start, end) of the usage event in `sse`."""

    json: bytes
    sse: bytes | None = None
    usage_span: tuple[int, int] | None = None
    expires_at: float | None = None

    @property
    def size(self) -> int:
        return len(self.json) + len(self.sse or b"") + 64

    def sse_body(self, include_usage: bool) -> bytes | None:
        """The stream replay, with or without the usage chunk."""
        if self.sse is None:
            return None
        if include_usage or self.usage_span is None:
            return self.sse
        start, end = self.usage_span
        return self.sse[:start] + self.sse[end:]


def encode(answer: CachedAnswer) -> bytes:
    sse = answer.sse or b""
    header = orjson.dumps(
        {
            "json": len(answer.json),
            "sse": len(sse) if answer.sse is not None else None,
            "usage": list(answer.usage_span) if answer.usage_span else None,
            "expires": answer.expires_at,
            "crc": zlib.crc32(sse, zlib.crc32(answer.json)),
        }
    )
    return b"".join((MAGIC, _HEADER_LENGTH.pack(len(header)), header, answer.json, sse))


def decode(data: bytes) -> CachedAnswer | None:
    """The answer in `data`, or None when the file is damaged in any way."""
    try:
        if data[:4] != MAGIC:
            return None
        (length,) = _HEADER_LENGTH.unpack_from(data, 4)
        header = orjson.loads(data[8 : 8 + length])
        start = 8 + length
        json_end = start + int(header["json"])
        sse_length = header["sse"]
        end = json_end + (int(sse_length) if sse_length is not None else 0)
        if end != len(data):
            return None
        body, sse = data[start:json_end], data[json_end:end]
        if zlib.crc32(sse, zlib.crc32(body)) != header["crc"]:
            return None
        usage = header["usage"]
        return CachedAnswer(
            json=body,
            sse=sse if sse_length is not None else None,
            usage_span=(int(usage[0]), int(usage[1])) if usage else None,
            expires_at=header["expires"],
        )
    except (orjson.JSONDecodeError, struct.error, KeyError, TypeError, ValueError, IndexError):
        return None
