"""Tests for sop.image_io: every awkward input is either converted sensibly or refused
with a readable ImageError. All fixtures are generated in memory / tmp_path at test time."""
from __future__ import annotations

import builtins
import io
import os
import pathlib
import struct
import time
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from sop.errors import ImageError, InputError, SOPError
from sop.image_io import (DEFAULT_BACKGROUND, DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS,
                          image_to_tensor, load_image, tensor_to_image)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


# --------------------------------------------------------------------------- fixture helpers

def encode(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    """Save a PIL image to bytes."""
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def noise_png(size: int = 64, seed: int = 0) -> bytes:
    """A PNG that does not compress well, so cutting it in half lands inside pixel data."""
    rng = np.random.default_rng(seed)
    return encode(Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)))


def noise_jpeg(size: int = 64, seed: int = 0) -> bytes:
    """A JPEG of random pixels."""
    rng = np.random.default_rng(seed)
    return encode(Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)), "JPEG")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC over type + data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: list[bytes]) -> bytes:
    """Hand-built PNG, for layouts Pillow cannot write (e.g. 48-bit RGB)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + row for row in rows))  # filter type 0 per row
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", pixels)
            + png_chunk(b"IEND", b""))


def png_claiming_size(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR is patched (CRC recomputed) to claim width x height."""
    png = bytearray(encode(Image.new("L", (1, 1))))
    start = 8 + 4  # signature, then the IHDR length field; type + data follow
    png[start + 4:start + 12] = struct.pack(">II", width, height)
    png[start + 17:start + 21] = struct.pack(">I", zlib.crc32(bytes(png[start:start + 17])))
    return bytes(png)


def jpeg_with_orientation(upright: Image.Image, orientation: int) -> bytes:
    """Store ``upright`` rotated so that applying EXIF ``orientation`` restores it."""
    stored = upright.transpose({6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
                               [orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def two_tone(width: int, height: int, top=RED, bottom=BLUE) -> Image.Image:
    """Top half one colour, bottom half another: shows which way is up."""
    img = Image.new("RGB", (width, height), bottom)
    img.paste(Image.new("RGB", (width, height // 2), top), (0, 0))
    return img


def pixels(img: Image.Image) -> np.ndarray:
    """Pixel array of a PIL image."""
    return np.asarray(img)


# --------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("make", [lambda p: b"", lambda p: io.BytesIO(b""),
                                  lambda p: (p / "empty.png").write_bytes(b"") or p / "empty.png"])
def test_empty_input_is_refused(tmp_path, make):
    with pytest.raises(ImageError, match="empty"):
        load_image(make(tmp_path))


@pytest.mark.parametrize("data", [b"hello, this is not an image\n" * 20,
                                  b"/etc/passwd",  # bytes are content, never a path
                                  b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
                                  b"\x89PNG\r\n\x1a\n" + os.urandom(200)])
def test_non_image_bytes_are_refused(data):
    with pytest.raises(ImageError, match="not an image we can read"):
        load_image(data)


def test_unsupported_format_is_refused():
    # TGA is readable by Pillow but outside the allow-list of formats.
    with pytest.raises(ImageError, match="PNG, JPEG, GIF, BMP, WebP or TIFF"):
        load_image(encode(Image.new("RGB", (8, 8), RED), "TGA"))


@pytest.mark.parametrize("data", [noise_png(), noise_jpeg()], ids=["png", "jpeg"])
def test_truncated_file_is_refused(data):
    with pytest.raises(ImageError, match="damaged or incomplete"):
        load_image(data[: len(data) // 2])


def test_corrupt_png_is_refused():
    data = bytearray(noise_png())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
    with pytest.raises(ImageError):
        load_image(bytes(data))


def test_corrupt_jpeg_header_is_refused():
    data = bytearray(noise_jpeg())
    data[20:220] = b"\x00" * 200  # wipes quantisation tables / frame header
    with pytest.raises(ImageError):
        load_image(bytes(data))


def test_corrupt_jpeg_scan_data_never_escapes_as_another_exception():
    # Damaged entropy-coded data may decode to a garbled picture (libjpeg tolerates it);
    # the only allowed outcomes are a correctly sized image or an ImageError.
    data = bytearray(noise_jpeg())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
    try:
        img = load_image(bytes(data))
    except ImageError:
        return
    assert img.size == (64, 64) and img.mode == "RGB"


def test_errors_are_catchable_as_project_and_value_errors():
    with pytest.raises(SOPError):
        load_image(b"nope")
    with pytest.raises(ValueError):
        load_image(b"nope")


# --------------------------------------------------------------------------- byte limit

def test_default_byte_limit_matches_streamlit_upload_size():
    assert DEFAULT_MAX_BYTES == 20 * 1024 * 1024


def test_oversized_bytes_are_refused_with_the_limit_in_the_message():
    data = noise_png()
    with pytest.raises(ImageError, match=r"max_bytes=1,000") as err:
        load_image(data, max_bytes=1000)
    assert "1000 bytes limit" in str(err.value)


def test_byte_limit_is_inclusive():
    data = noise_png(8)
    assert load_image(data, max_bytes=len(data)).size == (8, 8)


def test_default_byte_limit_message_is_in_megabytes():
    data = b"\x00" * (DEFAULT_MAX_BYTES + 1)
    with pytest.raises(ImageError, match="20 MB limit"):
        load_image(data)


class CountingStream(io.BytesIO):
    """BytesIO that records how many bytes were handed out."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.handed_out = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.handed_out += len(chunk)
        return chunk


def test_oversized_stream_is_refused_without_reading_it_all():
    stream = CountingStream(b"\x00" * 50_000)
    with pytest.raises(ImageError, match="max_bytes=1,000"):
        load_image(stream, max_bytes=1000)
    assert stream.handed_out == 1001


def test_oversized_file_is_refused_from_its_size_on_disk(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(noise_png())
    with pytest.raises(ImageError, match=r"KB \([\d,]+ bytes\).*max_bytes=2,048"):
        load_image(path, max_bytes=2048)


# --------------------------------------------------------------------------- pixel limit / bombs

def test_default_pixel_limit_is_forty_megapixels():
    assert DEFAULT_MAX_PIXELS == 40_000_000


@pytest.fixture
def no_decoding(monkeypatch):
    """Make any attempt to decode pixel data fail loudly."""
    def refuse(self):
        raise AssertionError("pixel data was decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.mark.parametrize("side", [8_000, 10_000, 100_000],
                         ids=["above-our-limit", "pillow-warning-range", "pillow-error-range"])
def test_decompression_bomb_is_refused_before_decoding(no_decoding, side):
    data = png_claiming_size(side, side)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's bomb warning must not leak out either
        with pytest.raises(ImageError, match=r"40 megapixels.*max_pixels=40,000,000"):
            load_image(data)
    assert time.perf_counter() - start < 1.0


def test_pixel_limit_message_names_size_and_limit():
    with pytest.raises(ImageError, match=r"20 x 20 pixels \(400 pixels\).*max_pixels=100"):
        load_image(encode(Image.new("RGB", (20, 20))), max_pixels=100)


def test_pixel_limit_is_inclusive():
    assert load_image(encode(Image.new("RGB", (10, 10))), max_pixels=100).size == (10, 10)


# --------------------------------------------------------------------------- conversions

def test_16bit_greyscale_png_is_scaled_not_clipped():
    values = np.array([[0, 65535], [257 * 100, 30000]], dtype=np.uint16)
    data = encode(Image.fromarray(values))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # really a 16-bit file
    grey = load_image(data, mode="L")
    np.testing.assert_array_equal(pixels(grey), [[0, 255], [100, 117]])
    rgb = pixels(load_image(data))
    assert rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[..., 0], pixels(grey))
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_48bit_rgb_png_is_read_as_8bit():
    data = raw_png(1, 1, 16, 2, [struct.pack(">HHH", 65535, 32896, 0)])
    np.testing.assert_array_equal(pixels(load_image(data))[0, 0], [255, 128, 0])


def test_32bit_integer_tiff_is_stretched():
    data = encode(Image.fromarray(np.array([[0, 50_000, 100_000]], dtype=np.int32)), "TIFF")
    np.testing.assert_array_equal(pixels(load_image(data, mode="L")), [[0, 128, 255]])


def test_float_tiff_in_unit_range_is_scaled():
    data = encode(Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)), "TIFF")
    np.testing.assert_array_equal(pixels(load_image(data, mode="L")), [[0, 128, 255]])


def test_cmyk_jpeg_becomes_rgb():
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    img = load_image(data)
    assert img.mode == "RGB"
    r, g, b = pixels(img).reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 60 and b < 60


def test_palette_png_becomes_rgb():
    img = Image.new("P", (2, 1))
    img.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    img.putpixel((1, 0), 1)
    out = load_image(encode(img))
    np.testing.assert_array_equal(pixels(out), [[[10, 20, 30], [200, 100, 50]]])


def test_palette_png_with_transparent_index_uses_background():
    img = Image.new("P", (2, 1))
    img.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    img.putpixel((1, 0), 1)
    data = encode(img, transparency=0)
    out = load_image(data, background=(0, 0, 255))
    np.testing.assert_array_equal(pixels(out), [[[0, 0, 255], [200, 100, 50]]])


def rgba_fixture() -> bytes:
    """Opaque red, half-transparent white, fully transparent green."""
    img = Image.new("RGBA", (3, 1))
    for x, px in enumerate([(255, 0, 0, 255), (255, 255, 255, 128), (0, 255, 0, 0)]):
        img.putpixel((x, 0), px)
    return encode(img)


def test_rgba_is_composited_on_black_by_default():
    assert DEFAULT_BACKGROUND == (0, 0, 0)
    out = pixels(load_image(rgba_fixture())).astype(int)
    np.testing.assert_array_equal(out[0, 0], RED)
    np.testing.assert_allclose(out[0, 1], [128, 128, 128], atol=1)
    np.testing.assert_array_equal(out[0, 2], [0, 0, 0])


def test_rgba_is_composited_on_a_chosen_background():
    out = pixels(load_image(rgba_fixture(), background=(0, 0, 255))).astype(int)
    np.testing.assert_array_equal(out[0, 0], RED)
    np.testing.assert_allclose(out[0, 1], [128, 128, 255], atol=1)
    np.testing.assert_array_equal(out[0, 2], BLUE)


def test_grey_alpha_image_is_composited():
    img = Image.new("LA", (2, 1))
    img.putpixel((0, 0), (200, 255))
    img.putpixel((1, 0), (200, 0))
    out = load_image(encode(img), mode="L", background=(255, 255, 255))
    np.testing.assert_array_equal(pixels(out), [[200, 255]])


def test_greyscale_image_for_rgb_model_is_replicated():
    data = encode(Image.fromarray(np.array([[0, 90, 255]], dtype=np.uint8)))
    out = pixels(load_image(data, mode="RGB"))
    assert out.shape == (1, 3, 3)
    np.testing.assert_array_equal(out, np.repeat(np.array([[0, 90, 255]])[..., None], 3, axis=2))


def test_rgb_image_for_greyscale_model_uses_luma():
    data = encode(Image.new("RGB", (1, 1), RED))
    out = load_image(data, mode="L")
    assert out.mode == "L" and pixels(out)[0, 0] == 76  # 0.299 * 255


def test_one_bit_image_is_accepted():
    img = Image.new("1", (2, 1))
    img.putpixel((1, 0), 1)
    np.testing.assert_array_equal(pixels(load_image(encode(img), mode="L")), [[0, 255]])


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_photo_is_upright(orientation):
    data = jpeg_with_orientation(two_tone(20, 40), orientation)
    assert Image.open(io.BytesIO(data)).size == (40, 20)  # stored sideways
    out = pixels(load_image(data)).astype(int)
    assert out.shape == (40, 20, 3)
    top, bottom = out[:16].reshape(-1, 3).mean(0), out[24:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 60      # red on top
    assert bottom[2] > 200 and bottom[0] < 60  # blue at the bottom


def test_broken_exif_does_not_lose_the_picture():
    data = encode(Image.new("RGB", (4, 2), RED), "JPEG", exif=b"Exif\x00\x00garbage-not-tiff")
    assert load_image(data).size == (4, 2)


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), GREEN)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    out = pixels(load_image(data)).reshape(-1, 3)
    assert (out == RED).all()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"])
def test_each_supported_format_loads(fmt):
    out = load_image(encode(Image.new("RGB", (6, 4), BLUE), fmt))
    assert out.size == (6, 4) and out.mode == "RGB"
    assert pixels(out).reshape(-1, 3).mean(0)[2] > 200


def test_one_pixel_image_is_accepted_and_resized():
    img = load_image(encode(Image.new("RGB", (1, 1), (10, 200, 30))))
    assert img.size == (1, 1)
    x = image_to_tensor(img, img_size=(8, 8), mean=(0, 0, 0), std=(1, 1, 1))
    assert x.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(x[0, :, 4, 4].numpy(), [10 / 255, 200 / 255, 30 / 255], atol=1e-6)
    assert torch.allclose(x, x[:, :, :1, :1].expand_as(x))


# --------------------------------------------------------------------------- sources

def test_path_str_and_pathlib_sources(tmp_path):
    path = tmp_path / "img.png"
    path.write_bytes(encode(Image.new("RGB", (3, 2), RED)))
    assert load_image(path).size == (3, 2)
    assert load_image(str(path)).size == (3, 2)


def test_missing_path_and_directory_are_refused(tmp_path):
    with pytest.raises(ImageError, match="No image file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="No image file"):
        load_image(tmp_path)


def test_stream_is_read_from_its_current_position():
    prefix = b"HEADER"
    stream = io.BytesIO(prefix + encode(Image.new("RGB", (3, 2), RED)))
    stream.seek(len(prefix))
    assert load_image(stream).size == (3, 2)


def test_binary_file_object_source(tmp_path):
    path = tmp_path / "img.png"
    path.write_bytes(encode(Image.new("RGB", (3, 2), RED)))
    with open(path, "rb") as fh:
        assert load_image(fh).size == (3, 2)


def test_text_mode_stream_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="binary mode"):
        load_image(io.StringIO("not bytes"))


def test_bytearray_and_memoryview_sources():
    data = encode(Image.new("RGB", (3, 2), RED))
    assert load_image(bytearray(data)).size == (3, 2)
    assert load_image(memoryview(data)).size == (3, 2)


def test_byte_inputs_never_touch_the_filesystem(monkeypatch, tmp_path):
    data = encode(Image.new("RGB", (3, 2), RED))
    load_image(data)  # warm-up: Pillow imports its plugins lazily on first use

    def forbidden(*args, **kwargs):
        raise AssertionError(f"filesystem access: {args!r}")

    # A file named like the content must not be picked up either.
    monkeypatch.chdir(tmp_path)
    for name, target in [("open", builtins), ("open", io), ("open", os), ("stat", os),
                         ("lstat", os), ("open", pathlib.Path), ("stat", pathlib.Path)]:
        monkeypatch.setattr(target, name, forbidden)
    results = [load_image(data), load_image(io.BytesIO(data)), load_image(memoryview(data))]
    with pytest.raises(ImageError):
        load_image(b"img.png")
    with pytest.raises(AssertionError, match="filesystem access"):  # the guard is live
        load_image(tmp_path / "img.png")
    monkeypatch.undo()
    assert all(r.size == (3, 2) for r in results)


def test_result_is_fully_loaded_and_independent():
    stream = io.BytesIO(encode(Image.new("RGB", (3, 2), RED)))
    img = load_image(stream)
    stream.close()
    assert pixels(img)[0, 0].tolist() == list(RED)
    assert img.mode == "RGB"


# --------------------------------------------------------------------------- argument errors

@pytest.mark.parametrize("kwargs", [{"mode": "RGBA"}, {"mode": "rgb"}, {"max_bytes": 0},
                                    {"max_bytes": 1.5}, {"max_pixels": -1}, {"max_pixels": True},
                                    {"background": (0, 0)}, {"background": (0, 0, 256)},
                                    {"background": "black"}, {"background": (0.5, 0, 0)}])
def test_bad_arguments_are_input_errors(kwargs):
    with pytest.raises(InputError):
        load_image(encode(Image.new("RGB", (2, 2))), **kwargs)


@pytest.mark.parametrize("source", [None, 3, 2.5, Image.new("RGB", (2, 2))])
def test_unsupported_source_types_are_input_errors(source):
    with pytest.raises(InputError, match="bytes, a binary file object or a file path"):
        load_image(source)


# --------------------------------------------------------------------------- image_to_tensor

def test_image_to_tensor_shape_dtype_and_normalisation():
    img = Image.new("RGB", (4, 4), (255, 0, 128))
    x = image_to_tensor(img, img_size=(4, 4), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert x.shape == (1, 3, 4, 4) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), [1.0, -1.0, 128 / 255 * 2 - 1], atol=1e-6)


def test_round_trip_is_exact_when_no_resize_is_needed():
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = image_to_tensor(Image.fromarray(arr), img_size=(5, 7), mean=mean, std=std)
    np.testing.assert_array_equal(tensor_to_image(x, mean, std), arr)


def test_wide_image_is_centre_padded_not_stretched():
    img = Image.new("RGB", (32, 16), RED)  # 2:1 -> 32x32 keeps 16 rows of red
    x = image_to_tensor(img, img_size=32, mean=(0,), std=(1,), background=(0, 0, 255))
    out = tensor_to_image(x, (0,), (1,))
    assert (out[:8] == BLUE).all() and (out[24:] == BLUE).all()
    assert (out[8:24] == RED).all()


def test_tall_image_pads_left_and_right_in_greyscale():
    img = Image.new("L", (8, 16), 200)
    x = image_to_tensor(img, img_size=(16, 16), mean=(0,), std=(1,), in_chans=1,
                        background=(255, 255, 255))
    out = tensor_to_image(x, (0,), (1,))[..., 0]
    assert (out[:, :4] == 255).all() and (out[:, 12:] == 255).all() and (out[:, 4:12] == 200).all()


def test_non_square_model_size():
    size = (np.int64(16), np.int64(32))  # sizes read from JSON/NumPy are accepted too
    x = image_to_tensor(Image.new("RGB", (100, 50), GREEN), img_size=size, mean=(0,), std=(1,))
    assert x.shape == (1, 3, 16, 32)
    assert torch.allclose(x[0, 1], torch.ones(16, 32))  # same aspect ratio: no padding


def test_extreme_aspect_ratio_does_not_build_a_huge_canvas():
    start = time.perf_counter()
    x = image_to_tensor(Image.new("RGB", (1, 20_000), RED), img_size=(32, 32), mean=(0,), std=(1,))
    assert x.shape == (1, 3, 32, 32)
    assert time.perf_counter() - start < 1.0


def test_downscaling_is_antialiased():
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)  # 1-pixel checkerboard
    x = image_to_tensor(Image.fromarray(checker), img_size=8, mean=(0,), std=(1,), in_chans=1)
    np.testing.assert_allclose(x.numpy(), 0.5, atol=0.02)  # aliasing would give 0s and 1s


def test_image_to_tensor_converts_channels():
    grey = image_to_tensor(Image.new("RGB", (2, 2), RED), img_size=2, mean=(0,), std=(1,),
                           in_chans=1)
    assert grey.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(grey.numpy(), 76 / 255, atol=1e-6)
    rgb = image_to_tensor(Image.new("L", (2, 2), 50), img_size=2, mean=(0,), std=(1,))
    assert rgb.shape == (1, 3, 2, 2)
    np.testing.assert_allclose(rgb.numpy(), 50 / 255, atol=1e-6)


def test_image_to_tensor_handles_transparent_and_deep_images():
    rgba = Image.new("RGBA", (2, 2), (255, 0, 0, 0))
    x = image_to_tensor(rgba, img_size=2, mean=(0,), std=(1,), background=(0, 255, 0))
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), [0, 1, 0])
    deep = Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16))
    x = image_to_tensor(deep, img_size=2, mean=(0,), std=(1,), in_chans=1)
    np.testing.assert_allclose(x.numpy(), 1.0)


@pytest.mark.parametrize("kwargs", [{"in_chans": 2}, {"img_size": (0, 4)}, {"img_size": (4,)},
                                    {"img_size": (4.5, 4)}, {"img_size": "44"},
                                    {"mean": (0.5, 0.5)}, {"std": (0, 1, 1)},
                                    {"std": (float("nan"),)}, {"mean": "abc"}])
def test_image_to_tensor_bad_arguments(kwargs):
    args = {"img_size": 4, "mean": (0.5,), "std": (0.5,), "in_chans": 3, **kwargs}
    with pytest.raises(InputError):
        image_to_tensor(Image.new("RGB", (4, 4)), **args)


def test_image_to_tensor_requires_a_pil_image():
    with pytest.raises(InputError, match="PIL image"):
        image_to_tensor(np.zeros((4, 4, 3)), img_size=4, mean=(0,), std=(1,))


def test_mean_length_must_match_channels():
    with pytest.raises(InputError, match="3 values but the image has 1 channel"):
        image_to_tensor(Image.new("L", (4, 4)), img_size=4, mean=(0.5, 0.5, 0.5),
                        std=(0.5,), in_chans=1)


# --------------------------------------------------------------------------- tensor_to_image

def test_tensor_to_image_greyscale_becomes_three_channels():
    x = torch.tensor([[[[-1.0, 1.0]]]])  # (1, 1, 1, 2), normalised with mean = std = 0.5
    out = tensor_to_image(x, (0.5,), (0.5,))
    assert out.dtype == np.uint8 and out.shape == (1, 2, 3)
    np.testing.assert_array_equal(out, [[[0, 0, 0], [255, 255, 255]]])


def test_tensor_to_image_clamps_and_hides_nan():
    x = torch.tensor([[[5.0, -5.0, float("nan")]]] * 3)  # (3, 1, 3)
    out = tensor_to_image(x, (0, 0, 0), (1, 1, 1))
    np.testing.assert_array_equal(out[0, :, 0], [255, 0, 0])


def test_scalar_mean_and_std_are_shared_by_all_channels():
    x = image_to_tensor(Image.new("RGB", (2, 2), (255, 0, 255)), img_size=2, mean=0.5, std=0.5)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), [1, -1, 1])


def test_tensor_to_image_accepts_numpy_and_2d():
    out = tensor_to_image(np.full((2, 3), 0.5, dtype=np.float32), (0,), (1,))
    assert out.shape == (2, 3, 3) and (out == 128).all()


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (4, 4, 3), (3,), (1, 2, 4, 4)])
def test_tensor_to_image_bad_shapes(shape):
    with pytest.raises(InputError):
        tensor_to_image(torch.zeros(shape), (0,), (1,))
