"""Reading a user's map (e.g. a lensing convergence map) from a .npy or FITS file.

    kappa = read_map(data, size=(66, 66))          # bytes -> (H, W) float32, physical units
    x = map_input(kappa, model.config)             # -> (1, 1, H, W) normalised model input

The file is untrusted.  The format is told from the content, not the name: ``\\x93NUMPY``
(numpy's .npy) or ``SIMPLE  =`` (FITS).  Everything is checked before the data are read:

* size: at most ``max_bytes`` (the app's upload limit);
* .npy: the header is parsed with ``numpy.lib.format`` first (dtype, shape), object / text /
  structured dtypes are refused (they would need pickle or mean nothing), then the array is
  loaded with ``allow_pickle=False``;
* FITS (astropy): the first HDU holding an image; NAXIS and the axis lengths are checked from
  the header before its data are read; tables are refused;
* the shape must be the model's map, (H, W), or (1, H, W) / (1, 1, H, W);
* every value must be finite (no NaN, no inf), also in float32 (what the model reads).

Every refusal is a `sop.InputError` with a sentence saying what is wrong.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import torch

from .errors import InputError

MAX_MAP_BYTES = 20 * 1024 * 1024   # = the app's upload limit (server.maxUploadSize, MiB)
NPY_MAGIC = b"\x93NUMPY"
FITS_MAGIC = b"SIMPLE  ="


def _shape_ok(shape: tuple[int, ...], size: tuple[int, int]) -> bool:
    """(H, W), or the same with leading axes of length 1."""
    return len(shape) >= 2 and tuple(shape[-2:]) == tuple(size) and all(int(s) == 1 for s in shape[:-2])


def _wrong_shape(shape, size, what: str) -> InputError:
    return InputError(f"{what} holds an array of shape {tuple(int(s) for s in shape)}; this model needs one "
                      f"{size[0]}x{size[1]} map (shape {tuple(size)}, or (1, {size[0]}, {size[1]}))")


def _numeric(dtype: np.dtype, what: str) -> None:
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise InputError(f"{what} holds {dtype} data; a map must hold real numbers (integers or floats)")


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        raise InputError(f"{what} has {int(bad.sum())} value(s) that are NaN or infinite; a map must be finite "
                         "everywhere (fill masked pixels first)")
    # the model reads float32: a float64 value beyond its range would become inf there
    huge = np.abs(out) > np.finfo(np.float32).max
    if huge.any():
        raise InputError(f"{what} has {int(huge.sum())} value(s) beyond the float32 range (|value| > 3.4e38); "
                         "a map of κ is of order 0.01-1")
    return out.astype(np.float32)


def read_npy(data: bytes, size: tuple[int, int], name: str = "the .npy file") -> np.ndarray:
    """A .npy file's bytes -> (H, W) float32, checked as the module docstring says."""
    from numpy.lib import format as npformat
    f = io.BytesIO(data)
    try:
        version = npformat.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(f)
        else:
            raise InputError(f"{name} is a .npy file of format version {version}, which is not read here "
                             "(save it with numpy.save)")
    except InputError:
        raise
    except Exception as err:  # a damaged header: numpy raises ValueError, EOFError, SyntaxError...
        raise InputError(f"{name} is not a readable .npy file (damaged header: {err})") from None
    _numeric(dtype, name)
    if not _shape_ok(shape, size):
        raise _wrong_shape(shape, size, name)
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as err:  # truncated data
        raise InputError(f"{name} is damaged: its data could not be read ({err})") from None
    return _finite(array.reshape(size), name)


def read_fits(data: bytes, size: tuple[int, int], name: str = "the FITS file") -> np.ndarray:
    """A FITS file's bytes -> (H, W) float32: the first HDU with an image."""
    from astropy.io import fits
    with warnings.catch_warnings():  # astropy warns about truncation too; the InputError says it
        warnings.simplefilter("ignore")
        return _read_fits(fits, data, size, name)


def _read_fits(fits, data: bytes, size: tuple[int, int], name: str) -> np.ndarray:
    try:
        hdul = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False)
    except Exception as err:
        raise InputError(f"{name} is not a readable FITS file ({err})") from None
    with hdul:
        images = [h for h in hdul if isinstance(h, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU))
                  and int(h.header.get("NAXIS", 0)) > 0]
        if not images:
            raise InputError(f"{name} holds no image (every HDU is empty or a table); save the map as the "
                             "primary image, e.g. astropy.io.fits.PrimaryHDU(kappa).writeto(path)")
        hdu = images[0]
        naxis = int(hdu.header["NAXIS"])
        # FITS lists the fastest axis first: NAXIS1 is the width
        shape = tuple(int(hdu.header.get(f"NAXIS{i}", 0)) for i in range(naxis, 0, -1))
        if not _shape_ok(shape, size):
            raise _wrong_shape(shape, size, f"{name} (NAXIS = {naxis})")
        try:
            array = np.asarray(hdu.data)
        except Exception as err:
            raise InputError(f"{name} is damaged: its image data could not be read ({err})") from None
        _numeric(array.dtype, name)
        if array.shape != shape:
            raise InputError(f"{name} is damaged: its header says shape {shape}, its data have {array.shape}")
        return _finite(array.reshape(size), name)


def read_map(data: bytes, size: tuple[int, int], name: str = "the file",
             max_bytes: int = MAX_MAP_BYTES) -> np.ndarray:
    """A .npy or FITS file's bytes -> the (H, W) float32 map, or a `sop.InputError` saying why not."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"read_map() takes the file's bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise InputError(f"{name} is {len(data) / 2**20:.1f} MiB; a map file may be at most "
                         f"{max_bytes / 2**20:.0f} MiB (a {size[0]}x{size[1]} float64 map is "
                         f"{size[0] * size[1] * 8 / 1024:.0f} KiB)")
    if not data:
        raise InputError(f"{name} is empty")
    if data.startswith(NPY_MAGIC):
        return read_npy(data, size, name)
    if data.startswith(FITS_MAGIC):
        return read_fits(data, size, name)
    raise InputError(f"{name} is neither a .npy file (numpy.save) nor a FITS file; save the map with "
                     "numpy.save or astropy.io.fits")


def map_input(kappa: np.ndarray, config) -> torch.Tensor:
    """An (H, W) map in physical units -> the model's (1, 1, H, W) input, normalised as its config says."""
    kappa = np.asarray(kappa, dtype=np.float32)
    if tuple(kappa.shape) != tuple(config.img_size) or int(config.in_chans) != 1:
        raise InputError(f"a map of shape {kappa.shape} does not fit a model of {tuple(config.img_size)} "
                         f"with {config.in_chans} channel(s)")
    x = torch.from_numpy(kappa.copy())[None, None]
    return (x - float(config.mean[0])) / float(config.std[0])


def map_of_input(x: torch.Tensor, config) -> np.ndarray:
    """The inverse of `map_input`: (1, 1, H, W) or (1, H, W) -> (H, W) float32 in physical units."""
    return (x.detach().reshape(x.shape[-2:]).double() * float(config.std[0]) + float(config.mean[0])) \
        .float().numpy()
