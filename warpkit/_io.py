"""Image files through OpenCV's codecs, on bytes: unicode paths work, sizes are checked from the header
before anything is decoded, and writes are atomic and leave nothing behind.

OpenCV is imported lazily; it is only needed by the command line and the reports.

- **Pixel limit.** :func:`read_image` reads the width and height from the file's header (PNG, JPEG, TIFF,
  BMP, PNM, WebP) and refuses an image above ``max_pixels`` before decoding it, so a few-KB file that claims
  100000x100000 pixels (a decompression bomb) is a one-line error, not an allocation. Default
  :data:`DEFAULT_MAX_PIXELS`, or ``WARPKIT_MAX_IMAGE_PIXELS``.
- **Temporary files.** :func:`write_image` writes ``.<name>.warpkit-<pid>-<token>.tmp`` beside the output and
  renames it into place; an exception (``KeyboardInterrupt`` and the command line's SIGTERM included) removes
  it. A leftover of a process killed outright (SIGKILL) carries a dead process id: the next write into that
  directory removes it (:func:`remove_stale_temporaries`).
- **Codec noise.** libpng, libjpeg and libtiff print warnings on the process's stderr themselves; they are
  silenced during decoding and encoding, so that an error is one line of ours.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import struct
import sys
import tempfile

import numpy as np

from ._errors import WarpkitError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageIOError",
    "check_encodable",
    "header_size",
    "max_pixels_from_environment",
    "read_image",
    "remove_stale_temporaries",
    "write_image",
]

#: Largest image (width x height) read or written by default: 2**27, e.g. 11585 x 11585.
DEFAULT_MAX_PIXELS = 2**27
_ENV_MAX_PIXELS = "WARPKIT_MAX_IMAGE_PIXELS"
_HEADER_BYTES = 2**18  # JPEG's size can follow 64 KB of EXIF: read this much for the header
_TEMPORARY = re.compile(r"^\..*\.warpkit-(\d+)-[0-9a-f]+\.tmp$")


class ImageIOError(WarpkitError, OSError):
    """An image file is missing, unreadable, corrupt, too large, or cannot be written in the requested format."""


def max_pixels_from_environment() -> int:
    """``WARPKIT_MAX_IMAGE_PIXELS`` as an int, or :data:`DEFAULT_MAX_PIXELS` when unset."""
    raw = os.environ.get(_ENV_MAX_PIXELS, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_PIXELS
    if not raw.isdigit() or int(raw) < 1:
        raise ImageIOError(f"{_ENV_MAX_PIXELS}: expected a positive number of pixels, got {raw!r}")
    return int(raw)


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as stored: ``(H, W)`` gray or ``(H, W, C)`` colour (BGR[A]), 8/16-bit or float.

    PNG, JPEG, TIFF and whatever else the installed OpenCV decodes. Images above ``max_pixels`` (default
    :func:`max_pixels_from_environment`) are refused from the header, before decoding. Raises
    :class:`ImageIOError`.
    """
    limit = max_pixels_from_environment() if max_pixels is None else int(max_pixels)
    name = os.fspath(path)
    try:
        data = np.fromfile(name, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageIOError(f"input: expected an existing image file, got {name!r} (no such file)") from None
    except IsADirectoryError:
        raise ImageIOError(f"input: expected an image file, got the directory {name!r}") from None
    except OSError as exc:
        raise ImageIOError(f"input: expected a readable image file, got {name!r} ({exc.strerror})") from None
    size = header_size(data[:_HEADER_BYTES].tobytes())
    if size is not None:
        _check_pixels(size, limit, "input", f"{name!r} (from its header)")
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(limit))  # OpenCV's own guard for other formats
    import cv2

    try:
        with quiet_codecs():
            image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as exc:
        raise ImageIOError(
            f"input: expected an image file OpenCV can decode, got {name!r} ({_first_line(exc)})"
        ) from None
    except MemoryError:
        raise ImageIOError(
            f"input: expected an image that fits in memory, got {name!r} (out of memory decoding it)"
        ) from None
    if image is None:
        raise ImageIOError(
            f"input: expected an image file OpenCV can decode (PNG, JPEG, TIFF, ...), got {name!r} "
            f"({data.size} bytes, empty, corrupt or of an unknown format)"
        )
    _check_pixels((image.shape[1], image.shape[0]), limit, "input", repr(name))
    return image


def _check_pixels(size: tuple[int, int], limit: int, argument: str, what: str) -> None:
    width, height = size
    if width * height > limit:
        raise ImageIOError(
            f"{argument}: expected an image of at most {limit:,} pixels (--max-pixels or {_ENV_MAX_PIXELS} raise "
            f"the limit), got {width}x{height} = {width * height:,} pixels in {what}"
        )


def header_size(head: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the first bytes of a PNG, JPEG, TIFF, BMP, PNM, WebP or GIF file; None if unknown."""
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head.startswith(b"\xff\xd8"):
            return _jpeg_size(head)
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(head)
        if head.startswith(b"BM") and len(head) >= 26:
            width, height = struct.unpack("<ii", head[18:26])
            return abs(width), abs(height)
        if head[:1] == b"P" and head[1:2] in b"123456" and len(head) > 2:
            tokens = re.sub(rb"#[^\n]*", b" ", head[2:256]).split()
            return int(tokens[0]), int(tokens[1])
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_size(head)
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", head[6:10])
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 9 < len(head):
        if head[position] != 0xFF:
            return None
        marker = head[position + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        length = struct.unpack(">H", head[position + 2 : position + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", head[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return None


def _tiff_size(head: bytes) -> tuple[int, int] | None:
    order = "<" if head[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", head[4:8])[0]
    count = struct.unpack(order + "H", head[offset : offset + 2])[0]
    found = {}
    for i in range(count):
        entry = head[offset + 2 + 12 * i : offset + 14 + 12 * i]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[
                0
            ]
    return (found[256], found[257]) if len(found) == 2 else None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def check_encodable(path: str | os.PathLike, dtype: np.dtype, channels: int) -> None:
    """Raise :class:`ImageIOError` now if ``path``'s format cannot hold an image of ``dtype`` and ``channels``
    (found by encoding a 2x2 one), so that a command fails before the work, not after it."""
    shape = (2, 2) if channels == 1 else (2, 2, channels)
    _encode(os.fspath(path), np.zeros(shape, dtype=dtype))


def _encode(path: str, image: np.ndarray) -> np.ndarray:
    """The encoded bytes of ``image`` in ``path``'s format, refusing formats that would convert it."""
    import cv2

    extension = os.path.splitext(path)[1].lower()
    if not extension:
        raise ImageIOError(f"output: expected a file name with an image extension (.png, .jpg, .tif), got {path!r}")
    try:
        with quiet_codecs():
            ok, encoded = cv2.imencode(extension, image)
    except cv2.error as exc:
        raise ImageIOError(
            f"output: expected a format that can hold a {_describe(image)}, got {extension!r} ({_first_line(exc)})"
        ) from None
    if not ok:
        raise ImageIOError(f"output: expected a format that can hold a {_describe(image)}, got {extension!r}")
    # OpenCV silently converts what a format cannot hold (16-bit JPEG -> 8 bits, RGBA JPEG -> RGB): refuse.
    with quiet_codecs():
        stored = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    if stored is None or stored.dtype != image.dtype or _channels(stored) != _channels(image):
        got = "nothing" if stored is None else _describe(stored)
        raise ImageIOError(
            f"output: expected a format that can hold a {_describe(image)}, got {extension!r}, which would store "
            f"it as {got}; use .png or .tif"
        )
    return encoded


def write_image(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = False) -> None:
    """Encode ``image`` (``(H, W)`` or ``(H, W, C)``, BGR[A]) by ``path``'s extension and write it atomically.

    The bytes go to a temporary file in the same directory, which then takes ``path``'s place in one
    step, so ``path`` never holds a half-written file; on any exception (interrupts included) the
    temporary is removed. An existing ``path`` is kept unless ``overwrite``. A format that cannot hold the
    image as it is (16 bits or floats in JPEG, floats in PNG, an alpha channel in JPEG) is refused.
    """
    path = os.fspath(path)
    if not overwrite and os.path.lexists(path):
        raise ImageIOError(f"output: expected a path that does not exist yet, got {path!r} (use --force to overwrite)")
    encoded = _encode(path, image)
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(directory)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.warpkit-{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        except OSError as exc:
            raise ImageIOError(f"output: expected a writable directory, got {directory!r} ({exc.strerror})") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(encoded.tobytes())
            handle.flush()
            os.fsync(handle.fileno())
        _publish(temporary, path, overwrite)
    except ImageIOError:
        raise
    except OSError as exc:
        raise ImageIOError(f"output: expected {path!r} to be written, got an error ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def remove_stale_temporaries(directory: str) -> list[str]:
    """Remove the temporaries of :func:`write_image` in ``directory`` whose process is gone (a SIGKILL's
    leftovers); those of live processes are left alone. Returns the removed paths."""
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _TEMPORARY.match(name)
        if match is None or _alive(int(match[1])):
            continue
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, name))
            removed.append(os.path.join(directory, name))
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: leave it
    return True


def _publish(temporary: str, path: str, overwrite: bool) -> None:
    """Give ``temporary`` the name ``path`` in one step; without ``overwrite`` never replace a file."""
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)  # fails if path exists, even if it appeared since the check above
    except FileExistsError:
        raise ImageIOError(
            f"output: expected a path that does not exist yet, got {path!r} (use --force to overwrite)"
        ) from None
    except OSError:  # a file system without hard links
        if os.path.lexists(path):
            raise ImageIOError(
                f"output: expected a path that does not exist yet, got {path!r} (use --force to overwrite)"
            ) from None
        os.replace(temporary, path)


@contextlib.contextmanager
def quiet_codecs():
    """Silence OpenCV's log and the codec libraries' own messages on stderr (file descriptor 2) meanwhile:
    our error says what went wrong, in one line."""
    import cv2

    logging = cv2.utils.logging
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    saved = None
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    except OSError:  # no file descriptor 2 to redirect (embedded interpreters): just run
        if saved is None:
            yield
        else:
            raise
    finally:
        if saved is not None:
            os.close(saved)
        logging.setLogLevel(previous)


def _channels(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 else image.shape[2]


def _describe(image: np.ndarray) -> str:
    channels = _channels(image)
    kind = {1: "gray", 2: "gray+alpha", 3: "colour", 4: "colour+alpha"}.get(channels, f"{channels}-channel")
    return f"{image.dtype} {kind} image"


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
