"""
The wheel ships every package: pyproject.toml lists packages by hand (flat
layout, so that C{twisted.plugins} ships too), and a package left out of the
list silently leaves the wheel.
"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def listed_packages() -> set[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return set(tomllib.load(f)["tool"]["setuptools"]["packages"])


def source_packages() -> set[str]:
    """Every directory under pygmy/ and twisted/plugins/ that holds Python code."""
    found = set()
    for top in ("pygmy", "twisted/plugins"):
        for source in (ROOT / top).rglob("*.py"):
            if "__pycache__" in source.parts:
                continue
            found.add(".".join(source.parent.relative_to(ROOT).parts))
    return found


def test_every_package_directory_is_listed():
    missing = source_packages() - listed_packages()
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_every_listed_package_exists():
    gone = {name for name in listed_packages() if not (ROOT / name.replace(".", "/")).is_dir()}
    assert not gone, f"listed in pyproject.toml but not in the tree: {sorted(gone)}"


def test_every_package_but_the_plugins_has_an_init():
    """twisted/plugins/ must have none (it is a namespace); every pygmy package needs one."""
    lacking = [
        name
        for name in source_packages()
        if name.startswith("pygmy") and not (ROOT / name.replace(".", "/") / "__init__.py").exists()
    ]
    assert not lacking, f"packages without __init__.py: {sorted(lacking)}"


def test_the_check_sees_a_missing_package(tmp_path, monkeypatch):
    """The check itself fails when a package directory is not listed."""
    fake = tmp_path / "pygmy" / "newpart"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (tmp_path / "twisted" / "plugins").mkdir(parents=True)
    (tmp_path / "twisted" / "plugins" / "p.py").write_text("")
    (tmp_path / "pyproject.toml").write_text('[tool.setuptools]\npackages = ["twisted.plugins"]\n')
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert source_packages() - listed_packages() == {"pygmy.newpart"}
