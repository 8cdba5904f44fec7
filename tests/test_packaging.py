"""The package as a user installs it: build the wheel, install it into a fresh venv, use it from
outside the repository.

The venv sees this interpreter's site-packages through a .pth file, so torch and the rest are
not reinstalled; the wheel goes in with --no-deps, and it comes first on sys.path (the venv's
own site-packages precede the .pth line), so `sop` is the installed copy, not this checkout.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
# What building needs (pyproject.toml reads the README and requirements.txt).  The sources are
# copied so that no build/ or *.egg-info is left in the checkout, nor a stale build/ reused.
BUILD_INPUTS = ("pyproject.toml", "requirements.txt", "README.md", "sop", "explorer")

FORWARD = """
import json, sys
import torch
import sop
m = sop.load(sys.argv[1])
cfg = m.config
x = torch.randn(2, cfg.in_chans, *cfg.img_size)
with torch.no_grad():
    out = m(x)
print(json.dumps(dict(file=sop.__file__, logits=list(out.logits.shape),
                      finite=bool(torch.isfinite(out.logits).all()), classes=len(cfg.class_names))))
"""


def _run(cmd, cwd, env, timeout=120):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv dir, wheel path, working dir outside the repo, clean environment)."""
    tmp = tmp_path_factory.mktemp("packaging")
    src, dist, work = tmp / "src", tmp / "dist", tmp / "work"
    work.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    # Build with this interpreter's setuptools (>= 70.1), offline.
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", dist, src], cwd=work, env=env)
    wheels = sorted(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels

    target = tmp / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(target)
    bindir = target / ("Scripts" if os.name == "nt" else "bin")
    vpy = bindir / ("python.exe" if os.name == "nt" else "python")
    purelib = Path(_run([vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=work, env=env).stdout.strip())
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "outer-site-packages.pth").write_text("\n".join(sorted(here)) + "\n")
    # The venv has no pip of its own: it runs the one it sees through the .pth file, which installs
    # into the venv (console script included).  --ignore-installed: a copy of the project installed
    # where the .pth points (e.g. an editable install) must neither count as installed nor be removed.
    _run([vpy, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--ignore-installed",
          wheels[0]], cwd=work, env=env)
    return target, bindir, vpy, wheels[0], work, env


def test_wheel_holds_library_app_and_pages(installed):
    _, _, _, wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("sop/__init__.py", "sop/cli.py", "sop/commands/train.py", "sop/data/__init__.py",
                     "sop/theory/__init__.py", "explorer/__init__.py", "explorer/icon.py",
                     "explorer/pages/explain.py", "explorer/pages/compare.py", "explorer/pages/mistakes.py"):
        assert expected in names, f"{expected} missing from {wheel.name}"
    assert not any("__pycache__" in n or n.startswith(("tests/", "bench/", "assets/")) for n in names), names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "sop = sop.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_console_script_matches_python_m_sop(installed):
    target, bindir, vpy, _, work, env = installed
    script = bindir / ("sop.exe" if os.name == "nt" else "sop")
    assert script.is_file(), sorted(p.name for p in bindir.iterdir())
    out = _run([script, "--help"], cwd=work, env=env).stdout
    assert out.startswith("usage:") and "train" in out and "evaluate" in out, out
    assert out == _run([vpy, "-m", "sop", "--help"], cwd=work, env=env).stdout


def test_installed_library_loads_and_runs_a_model(installed):
    target, _, vpy, _, work, env = installed
    checkpoint = ROOT / "assets" / "models" / "digits_sop.safetensors"
    report = json.loads(_run([vpy, "-c", FORWARD, checkpoint], cwd=work, env=env).stdout.strip().splitlines()[-1])
    sop_file = Path(report["file"]).resolve()
    assert sop_file.is_relative_to(target.resolve()), f"sop imported from {sop_file}, not the venv {target}"
    assert not sop_file.is_relative_to(ROOT), sop_file
    assert report["logits"] == [2, report["classes"]] and report["finite"], report


def test_installed_app_package_imports(installed):
    target, _, vpy, _, work, env = installed
    code = ("import explorer, explorer.icon, pathlib; p = pathlib.Path(explorer.__file__).parent;"
            "assert (p / 'pages' / 'explain.py').is_file(); print(explorer.__file__, explorer.icon.app_icon().size)")
    out = _run([vpy, "-c", code], cwd=work, env=env).stdout
    assert Path(out.split()[0]).resolve().is_relative_to(target.resolve()), out
