"""The lensing generator (sop.data.lensing): power spectrum against pyccl, reproducibility, splits."""
import dataclasses

import numpy as np
import pytest

pytest.importorskip("pyccl")

from sop.data import lensing as L  # noqa: E402

TINY = L.LensingSettings(cosmologies=(2, 1, 1), maps_per_cosmology=2, size=32)


def _ratio_per_bin(settings: L.LensingSettings, maps: np.ndarray, p: np.ndarray, bins: int = 8):
    """Per |ell| bin: the mean over modes of measured / input power, and its expected variance
    for a Gaussian field (each independent mode: exponential, var 1 per map; k and -k are one mode)."""
    ell = L.ell_grid(settings.size, settings.pixel_arcmin)
    measured = L.measured_cl(maps, settings.pixel_arcmin)
    expected = p * (settings.pixel_arcmin * L.ARCMIN) ** 2          # C(ell_k)
    nyquist = np.pi / (settings.pixel_arcmin * L.ARCMIN)
    edges = np.geomspace(ell[ell > 0].min() * 0.999, nyquist, bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (ell >= lo) & (ell < hi)
        independent = sel.sum() / 2
        out.append((float((measured[sel] / expected[sel]).mean()), 1 / (len(maps) * independent)))
    return out


def test_gaussian_maps_have_the_pyccl_power_spectrum_within_sampling_error():
    s = dataclasses.replace(L.DEFAULT, lognormal=False)
    fields = L.cosmology_fields(s, "train", 0, 0)
    ell, cl = L.convergence_cl(s, *fields.params)
    # the grid's power is pyccl's C_ell (log-log interpolation) divided by the pixel's solid angle
    k = L.ell_grid(s.size, s.pixel_arcmin)
    i, j = 3, 5
    assert fields.power[i, j] * (s.pixel_arcmin * L.ARCMIN) ** 2 == pytest.approx(
        np.exp(np.interp(np.log(k[i, j]), np.log(ell), np.log(cl))), rel=1e-9)
    maps = np.stack([L.render_map(s, fields, "train", 0, n).astype(np.float64) for n in range(40)])
    rows = _ratio_per_bin(s, maps, fields.power)
    z = np.array([(r - 1) / np.sqrt(var) for r, var in rows])
    assert np.all(np.abs(z) < 4), z
    assert (z ** 2).sum() < len(z) + 4 * np.sqrt(2 * len(z)), z       # chi-square with len(z) dof


def test_lognormal_maps_keep_the_power_spectrum_and_are_skewed_and_bounded():
    s = L.DEFAULT
    fields = L.cosmology_fields(s, "train", 0, 0)
    ell, cl = L.convergence_cl(s, *fields.params)
    p_kappa = L.power_grid(ell, cl, s.size, s.pixel_arcmin)
    maps = np.stack([L.render_map(s, fields, "train", 0, n).astype(np.float64) for n in range(40)])
    rows = _ratio_per_bin(s, maps, p_kappa)
    # non-Gaussian maps scatter more than a Gaussian field (the Gaussian sampling error is
    # sqrt(var)); a few-mode bin may miss by a few of those, the many-mode bins must be close
    assert all(abs(r - 1) < 0.05 + 6 * np.sqrt(var) for r, var in rows), rows
    assert abs(np.mean([r for r, _ in rows[-4:]]) - 1) < 0.05, rows
    assert maps.min() >= -fields.lam - 1e-6                 # kappa >= -lambda (the empty beam)
    skew = ((maps - maps.mean()) ** 3).mean() / maps.std() ** 3
    assert skew > 0.3                                         # peaks: a long positive tail


def test_maps_are_reproducible_bit_for_bit_and_depend_on_seed_split_and_settings(tmp_path):
    a_maps, a_y = L.generate_split(TINY, "train", seed=0, progress=False)
    b_maps, b_y = L.generate_split(TINY, "train", seed=0, progress=False)
    assert np.array_equal(a_maps, b_maps) and np.array_equal(a_y, b_y)
    c_maps, _ = L.generate_split(TINY, "train", seed=1, progress=False)
    assert not np.array_equal(a_maps, c_maps)
    # the cache returns the very same bytes, and a changed setting is another cache entry
    first = L.cached_split(TINY, "train", 0, cache_dir=tmp_path)
    again = L.cached_split(TINY, "train", 0, cache_dir=tmp_path)
    assert np.array_equal(first[0], a_maps) and np.array_equal(again[0], a_maps)
    noisy = dataclasses.replace(TINY, shape_noise=0.26, smoothing_arcmin=2.0)
    assert noisy.key() != TINY.key()
    n_maps, n_y = L.cached_split(noisy, "train", 0, cache_dir=tmp_path)
    assert np.array_equal(n_y, a_y) and not np.array_equal(n_maps, a_maps)
    assert len(list(tmp_path.iterdir())) == 2 and (tmp_path / TINY.key() / "settings.json").is_file()


def test_split_sizes_targets_and_the_registry_entry(tmp_path):
    import sop
    spec = sop.get_dataset("lensing")
    assert spec.task == "regression" and spec.modality == "image"
    assert [L.DEFAULT.split_size(k) for k in ("train", "val", "test")] == [1536, 256, 512]
    params = {}
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        s = L.load_lensing_split(split, settings=TINY, cache_dir=tmp_path)
        x, y = s.dataset.tensors
        assert tuple(x.shape) == (n, 1, 32, 32) and tuple(y.shape) == (n, 2)
        assert s.info.class_names == ["Omega_m", "sigma_8"] and s.info.in_chans == 1
        assert ((y[:, 0] >= 0.15) & (y[:, 0] <= 0.45) & (y[:, 1] >= 0.6) & (y[:, 1] <= 1.0)).all()
        assert (y[0::2] == y[1::2]).all()                     # two maps per cosmology
        params[split] = {tuple(r) for r in y.tolist()}
    assert not (params["train"] & params["val"]) and not (params["train"] & params["test"])
