"""
The manual stays true to the repository: every repository path that
C{README.rst} or a page of C{docs/} names exists, every C{pygmy.} module
name imports, every link to a page resolves, every C{make} target exists;
C{README.rst} stays a front page (at most 150 lines) that links every page
of C{docs/}.

A failure names the document, the line and what is missing.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.rst"
DOCS = sorted((REPO / "docs").glob("*.rst"))
PAGES = [README, *DOCS]
MAX_README_LINES = 150

#: A repository path: under one of the repository's folders, or one of its
#: top-level files.  Not preceded by a path or word character, so that
#: C{/etc/pygmy/config.ini}, C{./config.ini} or C{<data_dir>/x.log} are not
#: taken for repository paths.
PATH = re.compile(
    r"(?<![\w./$~-])"
    r"((?:pygmy|tests|benchmarks|docs|docker|twisted/plugins|\.ci)/[\w./-]*"
    r"|(?:config\.ini|pygmy\.tac|Makefile|compose\.yaml|Dockerfile|pyproject\.toml)(?![\w-]))"
)
#: A dotted name in the package: C{pygmy.cli.loadgen.drive}.
MODULE = re.compile(r"(?<![\w./-])pygmy(?:\.[A-Za-z_]\w*)+")
#: The target of a reST hyperlink, C{`text <target>`_}, or of an image.
LINK = re.compile(r"`[^`<]*<([^>`]+)>`__?|^\.\. (?:image|figure):: *(\S+)", re.MULTILINE)
#: A make target, in an inline literal or at the start of a literal line.
MAKE = re.compile(r"``make (\w+)|^\s+make (\w+)", re.MULTILINE)
NOT_MODULES = {"pygmy.tac"}


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def missing_paths(text: str, root: Path = REPO) -> list[tuple[int, str]]:
    """(line, path) of every repository path in C{text} that does not exist under C{root}."""
    found = []
    for match in PATH.finditer(text):
        path = match.group(1).rstrip(".,")
        if not (root / path).exists():
            found.append((line_of(text, match.start()), path))
    return found


def resolves(name: str) -> bool:
    """Whether C{pygmy.a.b.c} is a module, or an attribute of the longest module prefix."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            thing = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(thing, attribute):
                return False
            thing = getattr(thing, attribute)
        return True
    return False


def unknown_modules(text: str) -> list[tuple[int, str]]:
    """(line, name) of every C{pygmy.}-dotted name in C{text} that does not resolve."""
    return [
        (line_of(text, match.start()), match.group())
        for match in MODULE.finditer(text)
        if match.group() not in NOT_MODULES and not resolves(match.group())
    ]


def link_targets(text: str) -> list[tuple[int, str]]:
    """(line, target) of every hyperlink and image in C{text} that is not a URL."""
    targets = []
    for match in LINK.finditer(text):
        target = (match.group(1) or match.group(2)).strip().split("#")[0]
        if target and not re.match(r"[a-z]+:", target):
            targets.append((line_of(text, match.start()), target))
    return targets


def problems(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    name = page.relative_to(REPO)
    found = [f"{name}:{line}: {path} does not exist" for line, path in missing_paths(text)]
    found += [f"{name}:{line}: {module} does not import" for line, module in unknown_modules(text)]
    found += [
        f"{name}:{line}: link to {target}: {(page.parent / target).relative_to(REPO, walk_up=True)} does not exist"
        for line, target in link_targets(text)
        if not (page.parent / target).exists()
    ]
    makefile = (REPO / "Makefile").read_text()
    for match in MAKE.finditer(text):
        target = match.group(1) or match.group(2)
        if not re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE):
            found.append(f"{name}:{line_of(text, match.start())}: make {target}: no such target in Makefile")
    return found


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_named_path_exists(page):
    found = problems(page)
    assert not found, "\n".join(found)


def test_docs_has_pages():
    assert len(DOCS) >= 8, [p.name for p in DOCS]


def test_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.rst has {len(lines)} lines (at most {MAX_README_LINES})"


def test_readme_links_every_page():
    linked = {(REPO / target).resolve() for _, target in link_targets(README.read_text(encoding="utf-8"))}
    unlinked = [str(p.relative_to(REPO)) for p in DOCS if p.resolve() not in linked]
    assert not unlinked, f"README.rst does not link {', '.join(unlinked)}"


def test_a_stale_path_is_caught():
    """The checks find what a reorganisation leaves behind, with its line."""
    text = (
        "The store is in ``pygmy/storage.py`` and\n"
        "the harness in tests/integration/harness.py, run by ``make tests``;\n"
        "see pygmy.replication.Store, /etc/pygmy/config.ini and config.ini.\n"
    )
    assert missing_paths(text) == [(1, "pygmy/storage.py"), (2, "tests/integration/harness.py")]
    assert unknown_modules(text) == [(3, "pygmy.replication.Store")]
    assert not missing_paths("pygmy/replication/store.py, `docs <docs/>`_, pygmy.tac, docker/config.ini")
    assert not unknown_modules("pygmy.replication.store.Store and pygmy.cli:main, pygmy.tac")
    assert link_targets("`the API\n<api.rst#errors>`_ and `home <https://example.com/>`_") == [(1, "api.rst")]


def test_every_module_is_described_in_development_rst():
    """The layout in docs/development.rst names every module of pygmy/."""
    text = (REPO / "docs" / "development.rst").read_text()
    modules = sorted(
        str(path.relative_to(REPO))
        for path in (REPO / "pygmy").rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py") and "__pycache__" not in path.parts
    )
    missing = [module for module in modules if module not in text]
    assert not missing, f"describe in docs/development.rst: {missing}"
