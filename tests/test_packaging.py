"""The package list in pyproject.toml names every folder the wheel ships: a folder left out is
either missing from an installed mailpit_py or, shipped as data, a warning box in the output of
the first `make run` ("Package would be ignored") that a newcomer cannot tell from a failure."""

from __future__ import annotations

import tomllib

from helpers import REPO


def test_every_folder_of_the_package_is_in_the_package_list() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {
        ".".join(path.relative_to(REPO).parts)
        for path in [REPO / "mailpit_py", *(REPO / "mailpit_py").rglob("*")]
        if path.is_dir() and path.name != "__pycache__" and any(path.iterdir())
    }
    assert folders - listed == set(), f"pyproject.toml does not list {sorted(folders - listed)}"
    assert "mailpit_py.web" in listed  # web/, shipped inside the package
    assert setuptools["package-dir"]["mailpit_py.web"] == "web"


def test_the_receiver_profiles_ship_with_the_package() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = data["package-data"]["mailpit_py.receiver.profiles"]
    profiles = sorted((REPO / "mailpit_py" / "receiver" / "profiles").glob("*.yml"))
    assert profiles and shipped == ["*.yml"]
