"""The package installs as a wheel: every module, its dependencies declared,
and the files FreeRADIUS and the cluster read beside it."""

import shutil
import subprocess
import sys
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

HOME = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Built from the project's files alone, as in a fresh clone: a build/
    folder left by an earlier build would hand on modules since moved."""
    out = tmp_path_factory.mktemp("wheel")
    tree = tmp_path_factory.mktemp("tree")
    listed = subprocess.run(["git", "-C", str(HOME), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, text=True, check=True)
    for name in filter(None, listed.stdout.split("\0")):
        if (HOME / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(HOME / name, tree / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                             "--no-build-isolation", "-w", str(out), str(tree)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = out.glob("kondge_billing-*.whl")
    return path


def test_the_wheel_holds_every_module_and_the_service_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    modules = {str(p.relative_to(HOME)) for p in (HOME / "kondge_billing").rglob("*.py")}
    assert modules <= set(names), modules - set(names)
    data = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    for part in ("sql/functions", "sql/migrations"):
        expected = {f"share/kondge-billing/{part}/{p.name}"
                    for p in (HOME / part).glob("*.sql")}
        assert expected <= data, expected - data
    for required in ("share/kondge-billing/sql/grants.sql",
                     "share/kondge-billing/freeradius/radiusd.conf",
                     "share/kondge-billing/mods-config/python/kondge_hook.py",
                     "share/kondge-billing/tariffs/demo.yaml"):
        assert required in data


def test_the_wheel_declares_its_dependencies_and_extras(wheel):
    archive = zipfile.ZipFile(wheel)
    (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = Parser().parsestr(archive.read(meta).decode())
    requires = metadata.get_all("Requires-Dist")
    for dist in ("psycopg2", "PyYAML", "openpyxl", "fpdf2"):
        assert any(r.startswith(dist) and "extra" not in r for r in requires), dist
    assert any(r.startswith("pytest") and 'extra == "test"' in r for r in requires)
    assert set(metadata.get_all("Provides-Extra")) == {"test", "bench"}


def test_the_installed_wheel_runs_and_finds_its_files(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    result = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index",
                             str(wheel)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # the dependencies from the project's own venv, without the network
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    deps = next((HOME / ".venv" / "lib").glob("python3*/site-packages"))
    (site / "project-deps.pth").write_text(str(deps) + "\n")
    version = subprocess.run([str(env_dir / "bin" / "kondge"), "--version"],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
    from kondge_billing import __version__
    assert version.returncode == 0 and version.stdout.strip() == f"kondge {__version__}"
    home = subprocess.run([str(python), "-c",
                           "import kondge_billing.config as c, kondge_billing.rating.engine;"
                           "print(c.PROJECT_HOME, kondge_billing.__file__)"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert home.returncode == 0, home.stderr
    project_home, module = home.stdout.split()
    assert module.startswith(str(site))
    assert (Path(project_home) / "sql" / "migrations" / "0011_baseline.sql").exists()
    # every module of every subpackage is installed, and imports there
    every = subprocess.run([str(python), "-c",
                            "import importlib, pkgutil, kondge_billing as k\n"
                            "for m in pkgutil.walk_packages(k.__path__, 'kondge_billing.'):\n"
                            "    importlib.import_module(m.name)\n"
                            "    print(m.name)"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert every.returncode == 0, every.stderr
    source = {".".join(p.relative_to(HOME).with_suffix("").parts).removesuffix(".__init__")
              for p in (HOME / "kondge_billing").rglob("*.py")} - {"kondge_billing"}
    assert set(every.stdout.split()) == source
    validate = subprocess.run([str(env_dir / "bin" / "kondge"), "tariffs", "validate",
                               str(Path(project_home) / "tariffs" / "demo.yaml")],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert validate.returncode == 0, validate.stdout + validate.stderr
