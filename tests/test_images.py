"""Each image's locked packages run its commands.

There is no container runtime on the test machines, so the images are never built here.  What
can be checked is what they would hold: a virtual environment with exactly one image's lock
(``requirements-scorer.lock``, ``requirements-worker.lock``, as the Dockerfile installs them)
and this checkout's code, importing every module the image runs and answering ``--help`` for
its commands.  A module-level import of a package the image lacks fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UV = Path(sys.executable).with_name("uv")
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", re.M)

# The image, its lock, the packages whose every module it must import, and its commands.
IMAGES = {
    "scorer": (
        "requirements-scorer.lock",
        ("service", "registry"),
        [["serve", "--help"], ["models", "--help"]],
    ),
    "retrain-worker": (
        "requirements-worker.lock",
        ("service", "registry", "retrain"),
        [["retrain", "worker", "--help"], ["archive", "--help"], ["analyze", "--help"]],
    ),
}
_IMPORT_ALL = """
import importlib, pkgutil, sys
failed = []
for name in sys.argv[1:]:
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, name + "."):
        try:
            importlib.import_module(module.name)
        except Exception as exc:
            failed.append(f"{module.name}: {exc!r}")
print("\\n".join(failed))
"""


def _pins(lock: str) -> dict[str, str]:
    return dict(PIN.findall((ROOT / lock).read_text()))


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_an_image_lock_pins_what_the_tests_ran_and_no_test_tools(image: str) -> None:
    lock, _, _ = IMAGES[image]
    pins, tested = _pins(lock), _pins("requirements.lock")
    assert {name: (v, tested.get(name)) for name, v in pins.items() if tested.get(name) != v} == {}
    assert not {"pytest", "mypy", "ruff", "playwright", "moto", "schemathesis"} & set(pins)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("image", sorted(IMAGES))
def test_an_image_lock_imports_its_modules_and_runs_its_commands(
    image: str, tmp_path: Path
) -> None:
    lock, packages, commands = IMAGES[image]
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    sync = [str(UV), "pip", "sync", "--quiet", "--python", str(python), "--require-hashes"]
    subprocess.run([*sync, str(ROOT / lock)], check=True, timeout=540)
    # This checkout's code on the path, as the image copies it (not installed: no build here).
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
        )

    imported = run("-c", _IMPORT_ALL, *packages)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "", imported.stdout
    for args in commands:
        ran = run("-m", "shadowline", *args)
        assert ran.returncode == 0, f"shadowline {' '.join(args)}: {ran.stderr[-2000:]}"
        assert "Usage" in ran.stdout
    if image == "scorer":  # a training command, in the image without the training libraries
        ran = run("-m", "shadowline", "retrain", "run")
        assert ran.returncode == 2, ran.stderr
        assert "Traceback" not in ran.stderr
        assert ran.stderr.startswith("error: this command needs the optional 'retrain' ")


def test_the_load_generator_package_exports_each_public_name_from_its_module() -> None:
    import loadtest

    assert sorted(loadtest.__all__) == sorted(loadtest._HOMES)
    for name in loadtest.__all__:
        assert getattr(loadtest, name).__name__ == name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        loadtest.nothing  # noqa: B018


def test_every_extra_a_missing_module_is_blamed_on_exists_and_provides_it() -> None:
    import importlib.util
    import tomllib

    from shadowline.cli import EXTRA_OF_MODULE, missing_extra

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for module, extra in EXTRA_OF_MODULE.items():
        assert extra in extras, module
        assert importlib.util.find_spec(module) is not None, module  # the full venv has it
    message = missing_extra(
        ModuleNotFoundError("No module named 'pandas.core'", name="pandas.core")
    )
    assert message is not None
    assert "'retrain'" in message
    assert "pip install -e '.[retrain]'" in message
    assert missing_extra(ModuleNotFoundError("x", name="service.nothing")) is None
