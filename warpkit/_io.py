"""Image files through OpenCV's codecs, on bytes: unicode paths work and writes are atomic.

OpenCV is imported lazily; it is only needed by the command line and the reports.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np

from ._errors import WarpkitError

__all__ = ["ImageIOError", "read_image", "write_image"]


class ImageIOError(WarpkitError, OSError):
    """An image file is missing, unreadable, corrupt, or cannot be written in the requested format."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as stored: ``(H, W)`` gray or ``(H, W, C)`` colour (BGR[A]), 8/16-bit or float.

    PNG, JPEG, TIFF and whatever else the installed OpenCV decodes. Raises :class:`ImageIOError`.
    """
    import cv2

    try:
        data = np.fromfile(os.fspath(path), dtype=np.uint8)
    except FileNotFoundError:
        raise ImageIOError(f"input: expected an existing image file, got {os.fspath(path)!r} (no such file)") from None
    except IsADirectoryError:
        raise ImageIOError(f"input: expected an image file, got the directory {os.fspath(path)!r}") from None
    except OSError as exc:
        raise ImageIOError(f"input: expected a readable image file, got {os.fspath(path)!r} ({exc.strerror})") from None
    with _quiet_opencv():
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ImageIOError(
            f"input: expected an image file OpenCV can decode (PNG, JPEG, TIFF, ...), got {os.fspath(path)!r} "
            f"({data.size} bytes, empty, corrupt or of an unknown format)"
        )
    return image


def write_image(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = False) -> None:
    """Encode ``image`` (``(H, W)`` or ``(H, W, C)``) by ``path``'s extension and write it atomically.

    The bytes go to a temporary file in the same directory, which then takes ``path``'s place in one
    step, so ``path`` never holds a half-written file. An existing ``path`` is kept unless ``overwrite``.
    """
    import cv2

    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if not extension:
        raise ImageIOError(f"output: expected a file name with an image extension (.png, .jpg, .tif), got {path!r}")
    if not overwrite and os.path.lexists(path):
        raise ImageIOError(f"output: expected a path that does not exist yet, got {path!r} (use --force to overwrite)")
    try:
        with _quiet_opencv():
            ok, encoded = cv2.imencode(extension, image)
    except cv2.error as exc:
        raise ImageIOError(f"output: cannot encode a {image.dtype} image as {extension!r}: {_first_line(exc)}") from None
    if not ok:
        raise ImageIOError(f"output: cannot encode a {image.dtype} image with {image.shape} as {extension!r}")
    # OpenCV silently falls back to 8 bits for formats that cannot hold the depth (16-bit JPEG): refuse.
    with _quiet_opencv():
        stored = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    if stored is None or stored.dtype != image.dtype:
        raise ImageIOError(
            f"output: cannot encode a {image.dtype} image as {extension!r} without converting it "
            f"(it would be stored as {None if stored is None else stored.dtype}); use .png or .tif"
        )
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".warpkit-", suffix=extension)
    except OSError as exc:
        raise ImageIOError(f"output: cannot write in {directory!r} ({exc.strerror})") from None
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(encoded.tobytes())
            handle.flush()
            os.fsync(handle.fileno())
        _publish(temporary, path, overwrite)
    except ImageIOError:
        raise
    except OSError as exc:
        raise ImageIOError(f"output: cannot write {path!r} ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _publish(temporary: str, path: str, overwrite: bool) -> None:
    """Give ``temporary`` the name ``path`` in one step; without ``overwrite`` never replace a file."""
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)  # fails if path exists, even if it appeared since the check above
    except FileExistsError:
        raise ImageIOError(f"output: expected a path that does not exist yet, got {path!r} (use --force to overwrite)") from None
    except OSError:  # a file system without hard links
        if os.path.lexists(path):
            raise ImageIOError(f"output: expected a path that does not exist yet, got {path!r} (use --force to overwrite)") from None
        os.replace(temporary, path)


@contextlib.contextmanager
def _quiet_opencv():
    """OpenCV logs codec trouble on stderr itself; our error message says it in one line instead."""
    import cv2

    logging = cv2.utils.logging
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
