"""Reading untrusted images safely and turning them into model inputs.

``load_image`` is the single door through which a user's image (an upload, a file on
disk, raw bytes) enters the library. It either returns a clean 8-bit ``RGB`` or ``L``
PIL image or raises :class:`sop.errors.ImageError` with a message a non-specialist can act on.
``image_to_tensor`` turns that image into a normalised ``(1, C, H, W)`` tensor and
``tensor_to_image`` turns a model input back into something displayable.

Limits and safety
-----------------
* **File size**: at most ``max_bytes`` (default 20 MB = 20 * 1024 * 1024 bytes, the same as
  the app's Streamlit ``server.maxUploadSize = 20``). Larger inputs are refused with an
  ``ImageError`` naming the limit; streams are read only up to the limit, never in full.
* **Pixel count**: at most ``max_pixels`` (default 40 megapixels). The size is read from the
  file header *before* any pixel is decoded, so a "decompression bomb" (a small file that
  claims an enormous image) costs nothing. Pillow's own guard
  (``PIL.Image.MAX_IMAGE_PIXELS``, about 89 megapixels) also applies and is reported as an
  ``ImageError`` too, so the effective ceiling is the smaller of the two.
* **Formats**: only PNG, JPEG, GIF, BMP, WebP and TIFF are opened (``SUPPORTED_FORMATS``).
  Pillow's other readers (EPS, which runs Ghostscript, and rarely used legacy formats) are
  never tried on untrusted input.
* **Empty, non-image, truncated or corrupt files**: ``ImageError`` ("empty", "not an image
  we can read", "damaged or incomplete"). A JPEG whose compressed pixel data is damaged but
  whose structure is intact decodes to a visibly garbled picture; that cannot be detected
  and is accepted.
* **Uploads are bytes, never paths**: a ``str``/``Path`` source is read from disk; bytes and
  file objects are decoded in memory and never touch the filesystem, so an uploaded file's
  name is never used as a path.

Conversions (accepted, not refused)
-----------------------------------
* EXIF orientation is applied, so phone photos appear upright (unreadable EXIF is ignored).
* Animated GIF / WebP / PNG and multi-page TIFF: the first frame only.
* 16-bit greyscale (PNG/TIFF modes ``I;16*``, ``I``): scaled from 0-65535 to 0-255, not
  clipped (a plain Pillow conversion would turn almost every pixel white). 32-bit integer
  data outside 0-65535 and float data outside 0-1 are min-max stretched to 0-255.
* Transparency (RGBA, LA, palette or greyscale with a transparent colour): composited over
  ``background``, default black ``(0, 0, 0)`` -- the empty area of the bundled "digits"
  data (white ink on black). Pass the colour your model was
  trained on (e.g. white for product photos).
* CMYK, YCbCr, palette, 1-bit: converted to RGB. Greyscale for an RGB model is replicated
  to three channels; colour for a greyscale model uses the ITU-R 601-2 luma transform.
* A 1x1 image is accepted; it is simply resized like any other.
* Resizing (``image_to_tensor``): aspect ratio is kept -- the image is scaled to fit and
  centre-padded with ``background`` to the model's size (letterboxing), because stretching
  would distort shapes and the attributions would then describe a distorted picture.
  Resampling is bilinear and antialiased (Pillow widens the filter when shrinking).
"""
from __future__ import annotations

import io
import operator
import os
import threading
import warnings
from pathlib import Path
from typing import BinaryIO, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, InputError

DEFAULT_MAX_BYTES = 20 * 1024 * 1024      # matches Streamlit server.maxUploadSize = 20 (MiB)
DEFAULT_MAX_PIXELS = 40_000_000           # 40 megapixels: ~160 MB decoded as RGBA
DEFAULT_BACKGROUND = (0, 0, 0)            # black: background of white-on-black digit data
SUPPORTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")

__all__ = ["load_image", "image_to_tensor", "tensor_to_image", "DEFAULT_MAX_BYTES",
           "DEFAULT_MAX_PIXELS", "DEFAULT_BACKGROUND", "SUPPORTED_FORMATS"]

ImageSource = Union[bytes, bytearray, memoryview, BinaryIO, str, os.PathLike]

_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}
_READ_CHUNK = 1 << 20
# warnings.catch_warnings swaps a process-wide filter list; serialise our own use of it so
# two Streamlit sessions opening images at once cannot leave the filters modified.
_WARNINGS_LOCK = threading.Lock()


# --------------------------------------------------------------------------- public API

def load_image(source: ImageSource, *, mode: str = "RGB", max_bytes: int = DEFAULT_MAX_BYTES,
               max_pixels: int = DEFAULT_MAX_PIXELS,
               background: Sequence[int] = DEFAULT_BACKGROUND) -> Image.Image:
    """Read an untrusted image and return it as an upright 8-bit ``mode`` PIL image.

    Args:
        source: raw ``bytes``/``bytearray``/``memoryview``, a binary file object (read from
            its current position, e.g. a Streamlit ``UploadedFile``), or a ``str``/``Path``
            naming a file on disk. Only paths are opened from disk.
        mode: ``"RGB"`` (3-channel models) or ``"L"`` (greyscale models).
        max_bytes: largest accepted input size in bytes (default 20 MB).
        max_pixels: largest accepted width * height, checked before decoding (default 40 MP).
        background: RGB colour that transparent pixels are composited onto (default black).

    Raises:
        ImageError: the input is empty, too large, not a supported image, or damaged.
        InputError: an argument is unusable (unknown mode, bad limit, bad colour, bad type).
    """
    mode = _check_mode(mode)
    _check_limit("max_bytes", max_bytes)
    _check_limit("max_pixels", max_pixels)
    background = _check_background(background)
    data = _read_source(source, max_bytes)
    img = _open_checked(data, max_pixels)
    img = _decode(img)
    img = _exif_upright(img)
    return _to_mode(img, mode, background)


def image_to_tensor(img: Image.Image, *, img_size: int | Sequence[int], mean: Sequence[float],
                    std: Sequence[float], in_chans: int = 3,
                    background: Sequence[int] = DEFAULT_BACKGROUND) -> torch.Tensor:
    """Resize, pad and normalise a PIL image into a ``(1, in_chans, H, W)`` float32 tensor.

    The image is converted to ``RGB`` (``in_chans=3``) or ``L`` (``in_chans=1``), scaled to
    fit inside ``img_size`` = ``(H, W)`` keeping its aspect ratio (bilinear, antialiased),
    centred and padded with ``background``, then mapped to ``(x / 255 - mean) / std``.
    An image already of size ``(H, W)`` is not resampled at all.
    """
    if not isinstance(img, Image.Image):
        raise InputError(f"image_to_tensor expects a PIL image, got {type(img).__name__}.")
    height, width = _check_size(img_size)
    mode = {1: "L", 3: "RGB"}.get(in_chans)
    if mode is None:
        raise InputError(f"in_chans must be 1 (greyscale) or 3 (RGB), got {in_chans!r}.")
    mean_t, std_t = _check_norm(mean, std, in_chans)
    background = _check_background(background)
    img = _letterbox(_to_mode(img, mode, background), width, height, background)
    pixels = np.asarray(img, dtype=np.float32) / 255.0
    x = torch.from_numpy(pixels.reshape(height, width, in_chans)).permute(2, 0, 1)
    x = (x - mean_t[:, None, None]) / std_t[:, None, None]
    return x.unsqueeze(0).contiguous()


def model_input(source: ImageSource, config, *, invert: bool = False, digit_like: bool = False,
                max_bytes: int = DEFAULT_MAX_BYTES) -> torch.Tensor:
    """An image file (path, bytes or file object) -> the model's ``(1, C, H, W)`` input, prepared
    exactly as its checkpoint's `config` says (img_size, in_chans, mean, std).

    ``invert`` turns dark ink on white into white on black (greyscale digit models);
    ``digit_like`` prepares a drawing like the bundled digit scans (`centre_like_digits`).
    The one path from an image file to a model input: the app's uploads and drawings and
    ``python -m sop figure --input IMG`` both use it.
    """
    img = load_image(source, mode="L" if config.in_chans == 1 else "RGB", max_bytes=max_bytes)
    if digit_like:
        img = centre_like_digits(img)
        if img is None:
            raise InputError("the drawing is empty: draw a digit with the mouse")
    if invert:
        img = Image.fromarray(255 - np.asarray(img))
    return image_to_tensor(img, img_size=config.img_size, mean=config.mean, std=config.std, in_chans=config.in_chans)


def centre_like_digits(img: Image.Image) -> Image.Image | None:
    """A drawing made to look like the bundled digits: ink cropped, centred, sampled to 8x8.

    scikit-learn's digits are 8x8 counts of ink in 4x4 blocks of a centred 32x32 bitmap,
    so the drawing's ink is cropped to its bounding box, centred in a square with a small
    margin, and averaged down to 8x8 (the models upsample 8x8 -> 32x32 by pixel replication).
    None for a drawing without ink.
    """
    a = np.asarray(img.convert("L"), dtype=np.float32)
    ys, xs = np.nonzero(a > 32)
    if len(ys) == 0:
        return None
    crop = a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    side = int(max(crop.shape) * 1.15) + 1
    square = np.zeros((side, side), np.float32)
    oy, ox = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square[oy:oy + crop.shape[0], ox:ox + crop.shape[1]] = crop
    small = Image.fromarray(square.astype(np.uint8)).resize((8, 8), Image.Resampling.BOX)
    s = np.asarray(small, dtype=np.float32)
    s = s / max(s.max(), 1.0) * 255.0  # full ink = full brightness, as a fully inked block
    return Image.fromarray(s.astype(np.uint8)).resize((32, 32), Image.Resampling.NEAREST)


def tensor_to_image(x: torch.Tensor | np.ndarray, mean: Sequence[float],
                    std: Sequence[float]) -> np.ndarray:
    """Undo the normalisation of a model input and return a ``(H, W, 3)`` uint8 array.

    Accepts ``(C, H, W)``, ``(1, C, H, W)`` or ``(H, W)`` with ``C`` in {1, 3}. Greyscale is
    repeated to three channels so colour overlays can be drawn on it. Values are clamped
    to the displayable range and NaNs shown as black.
    """
    t = torch.as_tensor(x).detach().to("cpu", torch.float32)
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    elif t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise InputError("tensor_to_image expects shape (C, H, W), (1, C, H, W) or (H, W) "
                         f"with C = 1 or 3; got {tuple(t.shape)}.")
    mean_t, std_t = _check_norm(mean, std, t.shape[0])
    t = t * std_t[:, None, None] + mean_t[:, None, None]
    t = torch.nan_to_num(t, nan=0.0).clamp(0.0, 1.0)
    arr = (t * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------- argument checks

def _check_mode(mode: str) -> str:
    """Accept only the two modes a model can consume."""
    if mode not in ("RGB", "L"):
        raise InputError(f'mode must be "RGB" or "L", got {mode!r}.')
    return mode


def _check_limit(name: str, value: int) -> None:
    """Limits must be positive integers; a typo here would silently disable a safety check."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"{name} must be a positive integer, got {value!r}.")


def _check_background(background: Sequence[int]) -> tuple[int, int, int]:
    """Validate an RGB colour given as three integers 0-255."""
    try:
        colour = tuple(background)
    except TypeError:
        colour = ()
    if len(colour) != 3 or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool)
                                   and 0 <= c <= 255 for c in colour):
        raise InputError(f"background must be an RGB colour of three integers 0-255, "
                         f"got {background!r}.")
    return tuple(int(c) for c in colour)  # type: ignore[return-value]


def _check_size(img_size: int | Sequence[int]) -> tuple[int, int]:
    """Return ``(H, W)`` from an int or a pair of positive ints (NumPy ints included)."""
    try:
        pair = (img_size, img_size) if np.ndim(img_size) == 0 else tuple(img_size)
        size = tuple(operator.index(s) for s in pair if not isinstance(s, bool))
    except (TypeError, ValueError):
        size = ()
    if len(size) != 2 or min(size) <= 0:
        raise InputError(f"img_size must be a positive int or (height, width), got {img_size!r}.")
    return size  # type: ignore[return-value]


def _check_norm(mean: Sequence[float], std: Sequence[float],
                channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalisation constants: one per channel, or a single value shared by all channels."""
    try:
        mean_t = torch.as_tensor(np.atleast_1d(np.asarray(mean, dtype=np.float32))).flatten()
        std_t = torch.as_tensor(np.atleast_1d(np.asarray(std, dtype=np.float32))).flatten()
    except (TypeError, ValueError) as exc:
        raise InputError(f"mean and std must be numbers, got {mean!r} and {std!r}.") from exc
    for name, t in (("mean", mean_t), ("std", std_t)):
        if t.numel() not in (1, channels):
            raise InputError(f"{name} has {t.numel()} values but the image has {channels} "
                             f"channel(s); give one value per channel.")
        if not torch.isfinite(t).all():
            raise InputError(f"{name} must contain finite numbers, got {tuple(t.tolist())}.")
    if (std_t <= 0).any():
        raise InputError(f"std must be positive, got {tuple(std_t.tolist())}.")
    return mean_t.expand(channels), std_t.expand(channels)


# --------------------------------------------------------------------------- reading bytes

def _read_source(source: ImageSource, max_bytes: int) -> bytes:
    """Get at most ``max_bytes`` bytes from the source, refusing empty or oversized input."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = _from_buffer(source, max_bytes)
    elif isinstance(source, (str, os.PathLike)):
        data = _from_path(Path(source), max_bytes)
    elif hasattr(source, "read"):
        data = _from_stream(source, max_bytes)
    else:
        raise InputError("load_image expects bytes, a binary file object or a file path, "
                         f"not {type(source).__name__}.")
    if not data:
        raise ImageError("The file is empty (0 bytes); please choose an image file.")
    return data


def _from_buffer(buf: bytes | bytearray | memoryview, max_bytes: int) -> bytes:
    """Bytes already in memory: check the length before copying anything."""
    size = buf.nbytes if isinstance(buf, memoryview) else len(buf)
    if size > max_bytes:
        raise _too_many_bytes(max_bytes, size)
    return bytes(buf)


def _from_path(path: Path, max_bytes: int) -> bytes:
    """A local file: check its size on disk first, then read no more than the limit."""
    try:
        if not path.is_file():
            raise ImageError(f"No image file at '{path}'.")
        size = path.stat().st_size
        if size > max_bytes:
            raise _too_many_bytes(max_bytes, size)
        with path.open("rb") as fh:
            return _from_stream(fh, max_bytes)
    except ImageError:
        raise
    except (OSError, ValueError) as exc:  # permissions, NUL in the name, vanished file...
        raise ImageError(f"Could not read the image file '{path}': "
                         f"{getattr(exc, 'strerror', None) or exc}.") from exc


def _from_stream(stream: BinaryIO, max_bytes: int) -> bytes:
    """Read a file object in chunks, stopping one byte past the limit (never read it all)."""
    chunks, total = [], 0
    while total <= max_bytes:
        chunk = stream.read(min(_READ_CHUNK, max_bytes + 1 - total))
        if not chunk:
            break
        if not isinstance(chunk, (bytes, bytearray)):
            raise InputError("The file object returned text, not bytes; open it in binary "
                             "mode ('rb').")
        chunks.append(bytes(chunk))
        total += len(chunk)
    if total > max_bytes:
        raise _too_many_bytes(max_bytes)
    return b"".join(chunks)


def _too_many_bytes(max_bytes: int, size: int | None = None) -> ImageError:
    """The message names the limit, and the actual size when it is known."""
    if size is None:  # a stream: we stopped reading at the limit, so the total is unknown
        actual = "is"
    else:
        exact = f" ({size:,} bytes)" if size >= 1024 else ""
        actual = f"is {_human_size(size)}{exact}, which is"
    return ImageError(f"The file {actual} larger than the {_human_size(max_bytes)} limit "
                      f"(max_bytes={max_bytes:,}). Please use a smaller or more compressed image.")


def _human_size(n: int) -> str:
    """'20 MB', '1.5 KB' or '300 bytes' (1 MB = 1024 * 1024 bytes, as Streamlit counts)."""
    for unit, size in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


# --------------------------------------------------------------------------- decoding

def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Parse only the header and refuse images whose pixel count exceeds the limit."""
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            # Pillow only *warns* between MAX_IMAGE_PIXELS and twice that; make it a refusal.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=list(SUPPORTED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("The image is too large to open safely: its header declares more "
                         f"than {_human_pixels(Image.MAX_IMAGE_PIXELS or 0)} (Pillow's safety "
                         f"limit; the limit here is {_human_pixels(max_pixels)}, "
                         f"max_pixels={max_pixels:,}). It was refused before decoding. "
                         "Please resize it before uploading.") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("This file is not an image we can read: it is not a "
                         f"{_format_list()} file, or its header is damaged.") from exc
    except Exception as exc:  # any other parser failure on hostile input is still "unreadable"
        raise ImageError(f"This image could not be read; the file looks damaged ({exc}).") from exc
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError(f"The image has no pixels (size {width} x {height}).")
    if width * height > max_pixels:
        raise ImageError(f"The image is {width} x {height} pixels "
                         f"({_human_pixels(width * height)}), above the limit of "
                         f"{_human_pixels(max_pixels)} (max_pixels={max_pixels:,}). "
                         "Please resize it before uploading.")
    return img


def _human_pixels(n: int) -> str:
    """'40 megapixels' for large counts, '400 pixels' for small ones."""
    return f"{n / 1e6:.4g} megapixels" if n >= 1_000_000 else f"{n:,} pixels"


def _decode(img: Image.Image) -> Image.Image:
    """Decode the first frame's pixels; truncation or corruption becomes an ImageError."""
    try:
        img.load()
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError...
        raise ImageError("The image file is damaged or incomplete (for example a download or "
                         f"upload that was cut short) and cannot be decoded: {exc}.") from exc
    return img


def _exif_upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag so photos appear the way the camera showed them."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:
        # Broken EXIF metadata should not cost the user their (otherwise fine) picture.
        return img


def _format_list() -> str:
    """'PNG, JPEG, ... or TIFF' for messages."""
    names = [{"WEBP": "WebP"}.get(f, f) for f in SUPPORTED_FORMATS]
    return ", ".join(names[:-1]) + " or " + names[-1]


# --------------------------------------------------------------------------- colour modes

def _to_mode(img: Image.Image, mode: str, background: tuple[int, int, int]) -> Image.Image:
    """Convert any Pillow mode to 8-bit ``mode`` ("RGB" or "L"); always returns a new image."""
    if img.mode.startswith("I") or img.mode == "F":
        img = _deep_to_l(img)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        img = _flatten_alpha(img, background)
    if img.mode not in ("RGB", "L"):
        img = _convert(img, "L" if img.mode == "1" else "RGB")
    return _convert(img, mode) if img.mode != mode else img.copy()


def _deep_to_l(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer or float greyscale to 8 bits instead of clipping at 255."""
    arr = np.asarray(img).astype(np.float64)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if img.mode == "F" and 0.0 <= lo and hi <= 1.0:
        arr = arr * 255.0                       # float images in the usual 0-1 convention
    elif img.mode != "F" and 0.0 <= lo and hi <= 65535.0:
        arr = arr / 257.0                       # 16-bit range: 65535 / 257 == 255 exactly
    elif hi > lo:
        arr = (arr - lo) * (255.0 / (hi - lo))  # unknown range: stretch what is there
    else:
        arr = np.zeros_like(arr)
    arr = np.nan_to_num(arr, nan=0.0)
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), mode="L")


def _flatten_alpha(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Composite a transparent image over the background colour; returns RGB."""
    rgba = _convert(img, "RGBA")
    base = Image.new("RGBA", img.size, (*background, 255))
    return Image.alpha_composite(base, rgba).convert("RGB")


def _convert(img: Image.Image, mode: str) -> Image.Image:
    """Pillow conversion with a readable error for the few modes it cannot convert."""
    try:
        return img.convert(mode)
    except (ValueError, OSError) as exc:
        raise ImageError(f"Images in the '{img.mode}' colour mode are not supported; "
                         "please save the image as an ordinary RGB PNG or JPEG.") from exc


# --------------------------------------------------------------------------- geometry

def _letterbox(img: Image.Image, width: int, height: int,
               background: tuple[int, int, int]) -> Image.Image:
    """Scale to fit inside ``width x height`` keeping the aspect ratio, then centre-pad.

    Scaling first and padding second gives the same picture as padding to the target
    aspect ratio and then resizing, but never builds a huge intermediate canvas (a
    1 x 40,000,000 strip would otherwise be padded to 40,000,000 squared pixels).
    """
    if img.size == (width, height):
        return img
    scale = min(width / img.width, height / img.height)
    new_w = min(width, max(1, round(img.width * scale)))
    new_h = min(height, max(1, round(img.height * scale)))
    resized = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    if (new_w, new_h) == (width, height):
        return resized
    fill = background if img.mode == "RGB" else _luma(background)
    canvas = Image.new(img.mode, (width, height), fill)
    canvas.paste(resized, ((width - new_w) // 2, (height - new_h) // 2))
    return canvas


def _luma(colour: tuple[int, int, int]) -> int:
    """Grey level of an RGB colour, using the same formula as Pillow's RGB -> L."""
    return int(Image.new("RGB", (1, 1), colour).convert("L").getpixel((0, 0)))

