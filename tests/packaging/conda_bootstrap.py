"""A local conda channel, built offline, so the real recipe can be built and tested here.

No conda channel is reachable on the test machines, so the packages the recipe's host
and test environments need are made here with real conda tooling (see
``../shared/CONDA.md``; py-rattler-build and py-rattler):

- ``python``: THIS machine's CPython (``sys.base_prefix``), copied into ``$PREFIX`` by
  a small rattler-build recipe, which relocates it (RPATH, prefix placeholders). It is
  not conda-forge's python: it only stands in for it.
- every other package (pip, hatchling and its dependencies, alembic, sqlalchemy, mako,
  ...): the same version as in the running environment, downloaded as a wheel from
  PyPI, installed with ``pip --target`` and assembled into a ``.conda`` with
  ``rattler_build.assemble_package``; its ``depends`` come from the wheel's
  ``Requires-Dist``.

The channel is cached outside the repository, keyed on the interpreter and the
versions, because the python package takes minutes to build.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from importlib import metadata
from pathlib import Path

from filelock import FileLock
from packaging.requirements import Requirement

#: Python distributions the channel carries beyond python itself: the recipe's host
#: (pip, hatchling) and run requirements, and everything they need in turn.
DISTRIBUTIONS = (
    "pip",
    "hatchling",
    "packaging",
    "pathspec",
    "pluggy",
    "tomlkit",
    "trove-classifiers",
    "alembic",
    "sqlalchemy",
    "mako",
    "markupsafe",
    "typing-extensions",
    "filelock",
)
PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
PLATFORM = "linux-64"

PYTHON_RECIPE = """\
context:
  version: "{version}"
package:
  name: python
  version: ${{{{ version }}}}
build:
  number: 0
  string: h_local_{tag}_0
  script:
    # A copy of the interpreter this machine runs, without its site-packages and tests.
    - mkdir -p $PREFIX/bin $PREFIX/lib
    - cp -a {base}/bin/python{short} $PREFIX/bin/
    - ln -s python{short} $PREFIX/bin/python
    - ln -s python{short} $PREFIX/bin/python3
    - cp -a {base}/lib/libpython{short}*.so* $PREFIX/lib/
    - >-
      tar -C {base}/lib -cf - --exclude=python{short}/site-packages --exclude=python{short}/test
      --exclude=python{short}/idlelib --exclude=python{short}/tkinter
      --exclude=python{short}/turtledemo --exclude='python{short}/config-*'
      --exclude=__pycache__ python{short} | tar -C $PREFIX/lib -xf -
    - mkdir -p $PREFIX/lib/python{short}/site-packages
about:
  summary: "This machine's CPython {version}, packaged for an offline test channel (not conda-forge's)"
"""


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mypkg"
    return Path(os.environ.get("MYPKG_CONDA_CACHE", default))


def _versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in DISTRIBUTIONS}


def channel_key() -> str:
    recipe = PYTHON_RECIPE + json.dumps(_versions(), sort_keys=True) + sys.version + sys.base_prefix
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def bootstrap_channel() -> Path:
    """The local channel directory (``file://`` URL material), built if missing."""
    channel = cache_root() / f"conda-channel-{channel_key()}"
    if (channel / "noarch" / "repodata.json").exists():
        return channel
    channel.parent.mkdir(parents=True, exist_ok=True)
    # The suite's workers (pytest-xdist) may all want it at once: one builds, the others wait.
    with FileLock(channel.with_name(channel.name + ".lock"), timeout=1800):
        if (channel / "noarch" / "repodata.json").exists():
            return channel
        return _build_channel(channel)


def _build_channel(channel: Path) -> Path:
    work = Path(tempfile.mkdtemp(prefix="mypkg-conda-bootstrap-"))
    staging = channel.with_name(channel.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for subdir in ("noarch", PLATFORM):
            (staging / subdir).mkdir(parents=True)
        _build_python(staging, work)
        wheels = _download_wheels(work / "wheels")
        for name, wheel in wheels.items():
            _assemble_from_wheel(name, wheel, staging, work)
        index(staging)
        staging.rename(channel)  # only a complete channel is ever cached
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    return channel


def index(channel: Path) -> None:
    from rattler.index import index_fs

    asyncio.run(index_fs(channel, write_zst=False, write_shards=False, force=True))


def _build_python(channel: Path, work: Path) -> None:
    from rattler_build import Stage0Recipe, ToolConfiguration

    recipe_dir = work / "python-recipe"
    recipe_dir.mkdir()
    version = ".".join(map(str, sys.version_info[:3]))
    (recipe_dir / "recipe.yaml").write_text(
        PYTHON_RECIPE.format(
            version=version, short=PY_VERSION, base=sys.base_prefix, tag=PY_VERSION.replace(".", "")
        )
    )
    variant = Stage0Recipe.from_file(recipe_dir / "recipe.yaml").render()[0]
    variant.run_build(
        tool_config=ToolConfiguration(),
        output_dir=work / "python-out",
        channels=[channel.as_uri()],
        no_include_recipe=True,
        package_format="conda:1",
    )
    for built in (work / "python-out").glob(f"{PLATFORM}/python-*.conda"):
        shutil.copy2(built, channel / PLATFORM)


def _download_wheels(dest: Path) -> dict[str, Path]:
    pins = [f"{name}=={version}" for name, version in _versions().items()]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--python-version", PY_VERSION, "--dest", str(dest), *pins],
        check=True,
        env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"},
    )
    found = {}
    for wheel in dest.glob("*.whl"):
        dist = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
        found[dist] = wheel
    missing = set(DISTRIBUTIONS) - set(found)
    assert not missing, f"no wheel downloaded for {missing}"
    return found


def _conda_depends(dist: metadata.Distribution, pure: bool) -> list[str]:
    depends = ["python >=3.8"] if pure else [f"python {PY_VERSION}.*"]
    environment = {"python_version": PY_VERSION, "extra": "", "sys_platform": "linux",
                   "platform_machine": "x86_64", "implementation_name": "cpython",
                   "platform_python_implementation": "CPython", "os_name": "posix"}
    for line in dist.requires or []:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        spec = str(requirement.specifier).replace(" ", "")
        depends.append(f"{name} {spec}".strip())
    return depends


def _assemble_from_wheel(name: str, wheel: Path, channel: Path, work: Path) -> None:
    from rattler_build import assemble_package

    pure = wheel.name.endswith("-none-any.whl")
    stage = work / "stage" / name
    site = stage / ("site-packages" if pure else sysconfig.get_path("purelib", vars={"base": ""}).lstrip("/"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
         "--no-index", "--target", str(site), str(wheel)],
        check=True,
        env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"},
    )
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts: not needed here
    (dist,) = metadata.distributions(path=[str(site)])
    assemble_package(
        name=name,
        version=dist.version,
        target_platform="noarch" if pure else PLATFORM,
        build_string=("pyh_local_0" if pure else f"py{PY_VERSION.replace('.', '')}_local_0"),
        output_dir=channel / ("noarch" if pure else PLATFORM),
        files_dir=stage,
        depends=_conda_depends(dist, pure),
        noarch="python" if pure else None,
        summary=f"{name} {dist.version} from its PyPI wheel, for an offline test channel",
        compression_level=1,
    )
