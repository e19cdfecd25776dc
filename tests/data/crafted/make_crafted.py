"""Regenerate the crafted files beside this script (``python make_crafted.py``). Each is a few KB at most and
goes through ``warpkit warp`` in tests/test_cli_hostile.py: every one must end in exit status 2, one line on
stderr and no file left behind. The expected message of each is in EXPECTED there."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int, payload: bytes, depth: int = 8, colour: int = 2) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", payload) + png_chunk(b"IEND", b"")


def main() -> None:
    rng = np.random.default_rng(0)
    small = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
    good = cv2.imencode(".png", small)[1].tobytes()
    files = {
        # a decompression bomb: 100000 x 100000 RGB claimed, 3 KB of zeros compressed
        "bomb-100000x100000.png": png(100_000, 100_000, zlib.compress(bytes(300_000), 9)[:3000]),
        "bomb-65000x65000.jpg": b"\xff\xd8\xff\xc0\x00\x11\x08"
        + struct.pack(">HH", 65000, 65000)
        + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01\xff\xd9",
        "bomb-100000x100000.tif": b"II*\x00\x08\x00\x00\x00\x02\x00"
        + struct.pack("<HHII", 256, 4, 1, 100_000)
        + struct.pack("<HHII", 257, 4, 1, 100_000)
        + b"\x00\x00\x00\x00",
        "truncated.png": good[: len(good) // 2],
        "bad-crc.png": good[:40] + bytes([good[40] ^ 0xFF]) + good[41:],
        "garbage.png": rng.integers(0, 256, 512, dtype=np.uint8).tobytes(),
        "empty.png": b"",
        "text.jpg": b"this is not a JPEG\n",
        # strict JSON transforms (used with a good image)
        "numeric-strings.json": json.dumps({"matrix": [["1", "0", "0"], ["0", "1", "0"]]}).encode(),
        "regularization-true.json": json.dumps(
            {"src": [[0, 0], [10, 0], [0, 10]], "dst": [[1, 1], [11, 0], [0, 11]], "regularization": True}
        ).encode(),
        "nested-params.json": json.dumps({"family": "affine", "params": [[1, 0, 0, 0, 1, 0]]}).encode(),
        "batched-matrix.json": json.dumps({"matrix": [[[1, 0, 0], [0, 1, 0]]]}).encode(),
        "nan.json": b'{"matrix": [[1, 0, NaN], [0, 1, 0]]}',
        "duplicate-keys.json": b'{"matrix": [[1, 0, 0], [0, 1, 0]], "matrix": [[2, 0, 0], [0, 2, 0]]}',
        "bool-in-points.json": json.dumps(
            {"src": [[0, 0], [10, 0], [0, True]], "dst": [[1, 1], [11, 0], [0, 11]]}
        ).encode(),
        "ragged-points.json": json.dumps(
            {"src": [[0, 0], [10, 0, 3], [0, 10]], "dst": [[1, 1], [11, 0], [0, 11]]}
        ).encode(),
        "not-an-object.json": b"[1, 2, 3]",
        "good.png": good,
        # decodes, but libpng complains on stderr about an ancillary chunk's CRC: warpkit stays quiet
        "ancillary-bad-crc.png": good[:33]
        + png_chunk(b"tEXt", b"Comment\x00hello")[:-4]
        + b"\x00\x00\x00\x00"
        + good[33:],
    }
    for name, data in files.items():
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()
