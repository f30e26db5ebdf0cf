"""The package as users install it: a wheel built from the package's own files, installed
into a fresh venv, and ``koco-timer`` run from there, far from this checkout.

Installing Ray and kodosumi again for every test run would take minutes, so the fresh
venv gets its dependencies from this (the dev) venv's site-packages through a ``.pth``
line. A plain path line, not ``site.addsitedir``: the dev venv's own ``.pth`` files
are not run, so its editable kodosumi_timer (an import hook installed by such a file)
never loads; and the fresh venv's site-packages comes first on ``sys.path`` anyway.
The test proves it: ``kodosumi_timer.__file__`` lies inside the fresh venv.
"""

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "kodosumi_timer"

pytestmark = pytest.mark.timeout(300)


def run(cmd, *, cwd, env=None, timeout=180) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def package_files() -> set[str]:
    """Every file of the package in this checkout, as its path inside a wheel."""
    return {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of what a source tree holds for it (pyproject.toml,
    README.md, the package): nothing else of the checkout is needed, and no build/ or
    egg-info lands in it. Built with this venv's setuptools, offline."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / PACKAGE.name,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", tmp / "dist", source], cwd=tmp)
    [built] = (tmp / "dist").glob("kodosumi_timer-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    """A fresh venv with the wheel installed (no dependencies of its own: they come
    from the dev venv, see above); its bin/, an environment and a directory outside
    the checkout to run commands in."""
    tmp = tmp_path_factory.mktemp("fresh")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
         "--no-index", "-q", wheel], cwd=tmp)
    fresh_site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          cwd=tmp).strip())
    dev_paths = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (fresh_site / "_dev_venv_dependencies.pth").write_text("\n".join(dev_paths) + "\n")
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp),
           "LANG": "C.UTF-8", "TZ": "UTC"}  # nothing of this checkout's environment
    return venv / "bin", env, elsewhere


def test_the_wheel_ships_every_file_of_the_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("kodosumi_timer/")}
    assert package_files() - shipped == set()
    # what the package cannot work without, named: a missing one is plain to see
    for needed in ("kodosumi_timer/py.typed", "kodosumi_timer/demo_agents.py",
                   "kodosumi_timer/panel/templates/_nav.html",
                   "kodosumi_timer/panel/templates/schedule/_common.js",
                   "kodosumi_timer/panel/templates/schedule/_style.css",
                   "kodosumi_timer/store/migrations/env.py",
                   "kodosumi_timer/store/migrations/script.py.mako",
                   "kodosumi_timer/store/migrations/versions/0001_initial.py"):
        assert needed in shipped
    with zipfile.ZipFile(wheel) as archive:
        [entry_points] = [n for n in archive.namelist() if n.endswith("entry_points.txt")]
        assert "koco-timer = kodosumi_timer.cli:cli" in archive.read(entry_points).decode()


def test_koco_timer_runs_from_the_installed_wheel_outside_the_checkout(installed):
    bin_dir, env, elsewhere = installed
    helped = run([bin_dir / "koco-timer", "--help"], cwd=elsewhere, env=env)
    for command in ("demo", "preview", "serve", "start"):
        assert command in helped

    previewed = run([bin_dir / "koco-timer", "preview", "every weekday at 9am"],
                    cwd=elsewhere, env=env)
    assert "0 9 * * 1-5" in previewed
    assert "09:00" in previewed
    assert list(elsewhere.iterdir()) == []  # neither writes anything where it is run

    # the package and its demo agents (with Ray Serve and kodosumi) import from the wheel
    # (last: importing kodosumi.core makes ./data, kodosumi's own doing)
    where = run([bin_dir / "python", "-c",
                 "import kodosumi_timer, kodosumi_timer.demo_agents as agents; "
                 "print(kodosumi_timer.__file__); print(agents.__file__)"],
                cwd=elsewhere, env=env).split()
    venv = bin_dir.parent.resolve()
    assert len(where) == 2
    for path in where:
        assert Path(path).resolve().is_relative_to(venv), path
        assert not Path(path).resolve().is_relative_to(ROOT), path
