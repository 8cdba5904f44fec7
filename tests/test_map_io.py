"""Reading users' maps (.npy, FITS): good files, and a clear sop.InputError for every bad one."""
import io

import numpy as np
import pytest
import torch

import sop
from sop.map_io import map_input, map_of_input, read_map

SIZE = (66, 66)


def npy_bytes(array, **kw) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, **kw)
    return buf.getvalue()


def fits_bytes(array=None, table: bool = False) -> bytes:
    from astropy.io import fits
    buf = io.BytesIO()
    if table:
        col = fits.Column(name="kappa", format="E", array=np.zeros(5, np.float32))
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([col])]).writeto(buf)
    else:
        fits.PrimaryHDU(array).writeto(buf)
    return buf.getvalue()


def kappa(seed=0, dtype=np.float64):
    return np.random.default_rng(seed).normal(0, 0.015, SIZE).astype(dtype)


@pytest.mark.parametrize("shape", [SIZE, (1, *SIZE), (1, 1, *SIZE)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16])
def test_npy_maps_of_the_model_size_are_read_exactly(shape, dtype):
    k = (kappa() * (1000 if dtype is np.int16 else 1)).astype(dtype).reshape(shape)
    out = read_map(npy_bytes(k), SIZE)
    assert out.shape == SIZE and out.dtype == np.float32
    assert np.array_equal(out, k.reshape(SIZE).astype(np.float32))


def test_fits_maps_are_read_in_numpy_axis_order():
    k = kappa(1, np.float32)
    k[0, 1] = 0.5                               # row 0, column 1: not transposed on the way
    out = read_map(fits_bytes(k), SIZE)
    assert np.array_equal(out, k) and out[0, 1] == 0.5
    assert np.array_equal(read_map(fits_bytes(k[None]), SIZE), k)


@pytest.mark.parametrize("data, message", [
    (lambda: npy_bytes(np.zeros((64, 64))), r"shape \(64, 64\); this model needs one 66x66 map"),
    (lambda: npy_bytes(np.zeros((2, 66, 66))), r"shape \(2, 66, 66\)"),
    (lambda: npy_bytes(np.zeros(66 * 66)), r"shape \(4356,\)"),
    (lambda: npy_bytes(np.array([["a"] * 66] * 66)), "<U1 data; a map must hold real numbers"),
    (lambda: npy_bytes(np.zeros(SIZE, complex)), "complex128 data"),
    (lambda: npy_bytes(np.full(SIZE, None, dtype=object), allow_pickle=True), "object data"),
    (lambda: npy_bytes(np.where(np.eye(66) > 0, np.nan, 0.0)), "66 value.s. that are NaN or infinite"),
    (lambda: npy_bytes(np.where(np.eye(66) > 0, np.inf, 0.0)), "NaN or infinite"),
    (lambda: npy_bytes(np.where(np.eye(66) > 0, 1e300, 0.0)), "66 value.s. beyond the float32 range"),
    (lambda: npy_bytes(kappa())[:200], "damaged"),
    (lambda: b"\x93NUMPY\x01\x00\x10\x00{'descr': <f8, }" + b" " * 20, "not a readable .npy file"),
    (lambda: b"Omega_m,sigma_8\n0.3,0.8\n", "neither a .npy file"),
    (lambda: b"", "empty"),
    (lambda: fits_bytes(np.zeros((60, 66), np.float32)), r"NAXIS = 2.*shape \(60, 66\)"),
    (lambda: fits_bytes(np.where(np.eye(66) > 0, np.nan, 0.0)), "NaN or infinite"),
    (lambda: fits_bytes(table=True), "holds no image"),
    (lambda: fits_bytes(kappa())[:4000], "damaged: its image data could not be read"),
])
def test_bad_files_are_refused_with_a_sentence_saying_why(data, message):
    with pytest.raises(sop.InputError, match=message):
        read_map(data(), SIZE, name="map.npy")


def test_huge_files_are_refused_before_they_are_parsed():
    big = npy_bytes(np.zeros((66, 66)))
    with pytest.raises(sop.InputError, match="at most 0 MiB"):
        read_map(big, SIZE, max_bytes=1000)
    with pytest.raises(sop.InputError, match="MiB; a map file may be at most 20 MiB"):
        read_map(b"\x93NUMPY" + bytes(21 * 2 ** 20), SIZE)


def test_map_input_normalises_as_the_lensing_config_says():
    models = {m.name: m for m in sop.embedded_models(modality=None)}
    if "lensing" not in models:
        pytest.skip("no embedded lensing model")
    model = sop.load(models["lensing"].sop_path)
    k = kappa(2, np.float32)
    x = map_input(k, model.config)
    assert tuple(x.shape) == (1, 1, 66, 66)
    assert torch.allclose(x[0, 0], torch.from_numpy(k) / model.config.std[0])
    assert np.allclose(map_of_input(x, model.config), k, atol=1e-7)
    out = model(x)                                   # a real forward pass on the uploaded map
    assert torch.isfinite(out.logits).all()
    with pytest.raises(sop.InputError, match="does not fit"):
        map_input(np.zeros((64, 64)), model.config)
