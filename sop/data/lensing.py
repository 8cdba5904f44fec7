"""Mock weak-lensing convergence maps (kappa) for regressing (Omega_m, sigma_8).

Every setting lives in one place, `LensingSettings`; the defaults are the `lensing` dataset.
How one map is made (all offline):

1. **Cosmology**: (Omega_m, sigma_8) drawn uniformly from the prior box
   Omega_m in [0.15, 0.45], sigma_8 in [0.6, 1.0]; Omega_b = 0.045, h = 0.7, n_s = 0.96 fixed,
   Omega_c = Omega_m - Omega_b.  One draw per *cosmology*; each cosmology has
   `maps_per_cosmology` maps.  Cosmologies never repeat across splits.
2. **C_ell**: pyccl (`transfer_function="eisenstein_hu"`, `matter_power_spectrum="halofit"`)
   computes the convergence power spectrum of one source population with the Smail-type
   redshift distribution n(z) ~ z^2 exp(-(z / z0)^1.5), z0 = 0.5 (mean z ~ 0.9), on
   z in (0, 3], on `ell_points` log-spaced multipoles, interpolated in log-log space.
3. **Gaussian field** on a flat, periodic square patch of `size` x `size` pixels of
   `pixel_arcmin` (default 66 x 66 at 2 arcmin: 2.2 deg on a side) with numpy's FFT:
   unit white noise, Fourier-multiplied by sqrt(P_k), P_k = C(ell_k) / Omega_pix
   (Omega_pix = the pixel's solid angle), so that the estimator
   |FFT(kappa)_k|^2 Omega_pix / N^2 has expectation C(ell_k); the k = 0 mode is zero.
4. **Shifted lognormal**: kappa = lam * (exp(g - var_g / 2) - 1), with the Gaussian g
   built so that kappa has exactly the C_ell above on the grid:
   xi_g = ln(1 + xi_kappa / lam^2) from the grid's periodic correlation function
   (negative P_g, rare, clipped to 0).  The shift lam = |kappa_empty|, the convergence of an
   empty beam, (3/2) Omega_m (H0/c)^2 <int dchi (1+z) chi (chi_s - chi) / chi_s> over n(z_s):
   kappa >= -lam, as in Hilbert et al. 2011 / Xavier et al. 2016.  It depends on Omega_m,
   so the skewness of the maps carries information that C_ell alone mixes with sigma_8.
5. **Optional survey effects** (off by default): Gaussian shape noise per pixel,
   sigma_e / sqrt(n_gal * pixel area), then Gaussian smoothing of `smoothing_arcmin`.

Each map is a pure function of (settings, seed, split, index): the cosmology from
rng([seed, split, cosmology]), the field from rng([seed, split, index, 1]).
Generated splits are cached under `runs/cache/lensing/<hash of the settings>/` (git-ignored)
and regenerated when any setting changes.  Targets come back in physical units; models
train on standardised targets (`sop.regression`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .base import DatasetInfo, Split, normalise
from .registry import register_dataset

log = logging.getLogger(__name__)

TARGET_NAMES = ["Omega_m", "sigma_8"]
SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}
GENERATOR_VERSION = 1   # bump when the maths changes: the cache key includes it
ARCMIN = np.pi / (180 * 60)
C_KM_S = 299792.458
CACHE_DIR = Path(__file__).resolve().parents[2] / "runs" / "cache" / "lensing"


@dataclass(frozen=True)
class LensingSettings:
    """Everything that decides the lensing maps (documented in the module docstring)."""
    size: int = 66                        # pixels per side
    pixel_arcmin: float = 2.0             # pixel edge
    omega_m: tuple[float, float] = (0.15, 0.45)   # prior box, uniform
    sigma_8: tuple[float, float] = (0.6, 1.0)
    omega_b: float = 0.045
    h: float = 0.7
    n_s: float = 0.96
    z0: float = 0.5                       # n(z) ~ z^2 exp(-(z/z0)^1.5) on (0, z_max]
    z_max: float = 3.0
    cosmologies: tuple[int, int, int] = (192, 32, 64)   # train, val, test
    maps_per_cosmology: int = 8
    lognormal: bool = True                # False: Gaussian maps (the power-spectrum test)
    shape_noise: float = 0.0              # sigma_e (e.g. 0.26); 0: no noise
    n_gal: float = 30.0                   # galaxies per arcmin^2, with shape_noise
    smoothing_arcmin: float = 0.0         # Gaussian sigma; 0: none
    ell_points: int = 64
    norm_std: float = 0.015               # the models see kappa / norm_std

    def split_size(self, split: str) -> int:
        return self.cosmologies[SPLIT_OFFSET[split]] * self.maps_per_cosmology

    def key(self) -> str:
        """A hash of every setting and the generator version: the cache folder's name."""
        text = json.dumps(dict(dataclasses.asdict(self), version=GENERATOR_VERSION), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


DEFAULT = LensingSettings()


# --------------------------------------------------------------------------- physics

def redshift_distribution(s: LensingSettings) -> tuple[np.ndarray, np.ndarray]:
    z = np.linspace(1e-3, s.z_max, 300)
    nz = z ** 2 * np.exp(-(z / s.z0) ** 1.5)
    return z, nz / np.trapezoid(nz, z)


def cosmology(s: LensingSettings, omega_m: float, sigma_8: float):
    import pyccl
    return pyccl.Cosmology(Omega_c=omega_m - s.omega_b, Omega_b=s.omega_b, h=s.h, n_s=s.n_s, sigma8=sigma_8,
                           transfer_function="eisenstein_hu", matter_power_spectrum="halofit")


def convergence_cl(s: LensingSettings, omega_m: float, sigma_8: float, cosmo=None) -> tuple[np.ndarray, np.ndarray]:
    """(ell, C_ell) of the convergence for one cosmology (pyccl), on log-spaced ell in [10, 3e4]."""
    import pyccl
    cosmo = cosmo if cosmo is not None else cosmology(s, omega_m, sigma_8)
    tracer = pyccl.WeakLensingTracer(cosmo, dndz=redshift_distribution(s))
    ell = np.geomspace(10.0, 3e4, s.ell_points)
    return ell, pyccl.angular_cl(cosmo, tracer, tracer, ell)


def empty_beam_shift(s: LensingSettings, omega_m: float, sigma_8: float, cosmo=None) -> float:
    """|kappa_empty| averaged over n(z_s): the lognormal shift lambda."""
    import pyccl
    cosmo = cosmo if cosmo is not None else cosmology(s, omega_m, sigma_8)
    z, nz = redshift_distribution(s)
    chi = pyccl.comoving_radial_distance(cosmo, 1 / (1 + z))           # Mpc
    prefactor = 1.5 * omega_m * (100 * s.h / C_KM_S) ** 2
    kappa = np.empty_like(z)
    for i in range(len(z)):
        c = chi[: i + 1]
        integrand = (1 + z[: i + 1]) * c * (chi[i] - c) / max(chi[i], 1e-12)
        kappa[i] = prefactor * np.trapezoid(integrand, c)
    return float(np.trapezoid(kappa * nz, z))


def ell_grid(size: int, pixel_arcmin: float) -> np.ndarray:
    """(size, size) |ell| of each FFT mode of the patch."""
    k = 2 * np.pi * np.fft.fftfreq(size, d=pixel_arcmin * ARCMIN)
    return np.hypot(k[:, None], k[None, :])


def power_grid(ell: np.ndarray, cl: np.ndarray, size: int, pixel_arcmin: float) -> np.ndarray:
    """(size, size) P_k = C(|ell_k|) / Omega_pix (log-log interpolation); P_0 = 0."""
    grid = ell_grid(size, pixel_arcmin)
    safe = np.where(grid > 0, grid, ell[0])
    p = np.exp(np.interp(np.log(safe), np.log(ell), np.log(cl))) / (pixel_arcmin * ARCMIN) ** 2
    p[0, 0] = 0.0
    return p


def lognormal_gaussian_power(p_kappa: np.ndarray, lam: float) -> np.ndarray:
    """P_g of the Gaussian g whose shifted lognormal has power P_kappa on the periodic grid."""
    xi_kappa = np.fft.ifft2(p_kappa).real              # periodic correlation function, xi(0) = variance
    xi_g = np.log1p(xi_kappa / lam ** 2)
    return np.clip(np.fft.fft2(xi_g).real, 0.0, None)


def gaussian_map(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian random field with power P_k (see the module docstring): (size, size) float64."""
    white = rng.standard_normal(p.shape)
    return np.fft.ifft2(np.fft.fft2(white) * np.sqrt(p)).real


def measured_cl(maps: np.ndarray, pixel_arcmin: float) -> np.ndarray:
    """(size, size) |FFT(map)|^2 Omega_pix / N^2 averaged over (M, size, size) maps: estimates C(ell_k)."""
    n = maps.shape[-1] * maps.shape[-2]
    f = np.fft.fft2(maps)
    return (np.abs(f) ** 2).mean(0) * (pixel_arcmin * ARCMIN) ** 2 / n


# --------------------------------------------------------------------------- maps

@dataclass
class CosmologyFields:
    """What every map of one cosmology shares: its parameters and the field's power."""
    params: tuple[float, float]
    power: np.ndarray            # P of the Gaussian field that is drawn
    lam: float | None            # lognormal shift (None: Gaussian maps)


def cosmology_params(s: LensingSettings, split: str, seed: int, c: int) -> tuple[float, float]:
    rng = np.random.default_rng([seed, SPLIT_OFFSET[split], c])
    u = rng.random(2)
    return (s.omega_m[0] + u[0] * (s.omega_m[1] - s.omega_m[0]), s.sigma_8[0] + u[1] * (s.sigma_8[1] - s.sigma_8[0]))


def cosmology_fields(s: LensingSettings, split: str, seed: int, c: int) -> CosmologyFields:
    om, s8 = cosmology_params(s, split, seed, c)
    cosmo = cosmology(s, om, s8)
    ell, cl = convergence_cl(s, om, s8, cosmo)
    p = power_grid(ell, cl, s.size, s.pixel_arcmin)
    if not s.lognormal:
        return CosmologyFields((om, s8), p, None)
    lam = empty_beam_shift(s, om, s8, cosmo)
    return CosmologyFields((om, s8), lognormal_gaussian_power(p, lam), lam)


def render_map(s: LensingSettings, fields: CosmologyFields, split: str, seed: int, index: int) -> np.ndarray:
    """Map `index` of a split: (size, size) float32 kappa."""
    rng = np.random.default_rng([seed, SPLIT_OFFSET[split], index, 1])
    g = gaussian_map(fields.power, rng)
    if fields.lam is not None:
        var = float(np.fft.ifft2(fields.power).real[0, 0])
        g = fields.lam * (np.exp(g - var / 2) - 1)
    if s.shape_noise > 0:
        g = g + rng.standard_normal(g.shape) * s.shape_noise / np.sqrt(s.n_gal * s.pixel_arcmin ** 2)
    if s.smoothing_arcmin > 0:
        ell = ell_grid(s.size, s.pixel_arcmin)
        sigma = s.smoothing_arcmin * ARCMIN
        g = np.fft.ifft2(np.fft.fft2(g) * np.exp(-0.5 * (ell * sigma) ** 2)).real
    return g.astype(np.float32)


def generate_split(s: LensingSettings, split: str, seed: int = 0, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(maps (N, 1, size, size) float32 kappa, targets (N, 2) float32 [Omega_m, sigma_8])."""
    from tqdm import tqdm
    n_cosmo, per = s.cosmologies[SPLIT_OFFSET[split]], s.maps_per_cosmology
    maps = np.empty((n_cosmo * per, 1, s.size, s.size), np.float32)
    targets = np.empty((n_cosmo * per, 2), np.float32)
    for c in tqdm(range(n_cosmo), desc=f"lensing {split}", disable=not progress, leave=False, mininterval=2.0):
        fields = cosmology_fields(s, split, seed, c)
        for j in range(per):
            i = c * per + j
            maps[i, 0] = render_map(s, fields, split, seed, i)
            targets[i] = fields.params
    return maps, targets


def cached_split(s: LensingSettings, split: str, seed: int = 0, cache_dir: Path | None = CACHE_DIR
                 ) -> tuple[np.ndarray, np.ndarray]:
    """`generate_split`, read from / written to `cache_dir/<settings hash>/` (None: no cache)."""
    if cache_dir is None:
        return generate_split(s, split, seed)
    path = Path(cache_dir) / s.key() / f"{split}-seed{seed}.npz"
    if path.is_file():
        with np.load(path) as f:
            return f["maps"], f["targets"]
    log.info("generating lensing %s maps (seed %d) into %s", split, seed, path.parent)
    maps, targets = generate_split(s, split, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "settings.json").write_text(json.dumps(dataclasses.asdict(s), indent=2) + "\n")
    # A per-process temporary name: two runs generating the same split at once (parallel training
    # runs, pytest workers) each write their own file, and the last rename wins with identical data.
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, maps=maps, targets=targets)
    tmp.replace(path)
    return maps, targets


def lensing_info(s: LensingSettings, name: str = "lensing") -> DatasetInfo:
    return DatasetInfo(name=name, class_names=list(TARGET_NAMES), in_chans=1, img_size=(s.size, s.size),
                       mean=(0.0,), std=(s.norm_std,),
                       description=f"mock shifted-lognormal convergence maps, {s.size}x{s.size} at "
                                   f"{s.pixel_arcmin} arcmin; targets Omega_m, sigma_8",
                       extra={"target_names": list(TARGET_NAMES), "settings": dataclasses.asdict(s)})


def load_lensing_split(split: str, seed: int = 0, settings: LensingSettings = DEFAULT, name: str = "lensing",
                       cache_dir: Path | None = CACHE_DIR) -> Split:
    """One split: (kappa / norm_std as (1, H, W), targets (2,) in physical units)."""
    from torch.utils.data import TensorDataset
    maps, targets = cached_split(settings, split, seed, cache_dir)
    info = lensing_info(settings, name)
    images = normalise(torch.from_numpy(maps), info.mean, info.std)
    return Split(TensorDataset(images, torch.from_numpy(targets).float()), info)


@register_dataset("lensing", label="Weak-lensing maps", modality="image", task="regression",
                  capabilities=("scientific", "diverging"))
def lensing(split: str, *, img_size: tuple[int, int] | None = None, seed: int = 0) -> Split:
    """Mock 66x66 weak-lensing convergence maps; regress (Omega_m, sigma_8)."""
    return load_lensing_split(split, seed=seed)
