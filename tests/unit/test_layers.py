"""
The folders show the layers (DESIGN.md section 1): each package imports only
from the layers below it, no role imports another role, and no server module
imports an operator tool (L{pygmy.cli}) or the test clusters (L{pygmy.testing}).
"""

import ast
from pathlib import Path

import pytest

PYGMY = Path(__file__).resolve().parents[2] / "pygmy"

#: Lowest first.  A package may import its own modules and any lower layer.
LAYERS = [
    {"__init__", "clock", "endpoints", "errors", "files", "ini", "tasks"},
    {"config"},
    {"net", "process"},
    {"replication"},
    {"coordination"},
    {"catalog", "order", "frontend"},
    {"cluster"},
    {"cli"},
    {"testing"},
    {"testing_etcd"},
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def top_part(module: str) -> str:
    """C{pygmy.net.web} -> C{net}; C{pygmy} -> C{__init__}."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(source: Path) -> list[tuple[int, str]]:
    """(line, module) of every pygmy module that C{source} imports, lazily or not."""
    found = []
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pygmy":
            if node.module == "pygmy":
                found += [(node.lineno, f"pygmy.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "pygmy"]
    return found


def violations(root: Path) -> list[str]:
    """Every import in C{root} that goes to the same or a higher layer's other package."""
    wrong = []
    for source in sorted(root.rglob("*.py")):
        relative = source.relative_to(root.parent).with_suffix("")
        own = top_part(".".join(relative.parts))
        for line, module in imports_of(source):
            target = top_part(module)
            if target == own or target == "__version__":
                continue
            if target not in LEVEL or own not in LEVEL:
                wrong.append(f"{source}:{line}: {module} (a package not in LAYERS: add it)")
            elif LEVEL[target] >= LEVEL[own]:
                wrong.append(f"{source}:{line}: pygmy.{own} imports {module}, which is not below it")
    return wrong


def test_every_package_is_in_a_layer():
    packages = {p.name for p in PYGMY.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PYGMY.glob("*.py")}
    assert not (packages | modules) - set(LEVEL), "add the new package to LAYERS"


def test_each_layer_imports_only_from_below():
    assert violations(PYGMY) == []


@pytest.mark.parametrize(
    "own, imported",
    [("net", "pygmy.replication.store"), ("frontend", "pygmy.catalog.books"), ("replication", "pygmy.cli.chaos")],
)
def test_a_wrong_import_is_found(tmp_path, own, imported):
    package = tmp_path / "pygmy" / own
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "bad.py").write_text(f"def f():\n    import {imported}\n")
    assert len(violations(tmp_path / "pygmy")) == 1
