"""What the code uses is what the setup installs: the paper's LaTeX packages (scripts/setup-tex and
its table) and the Python packages the library, the workflow scripts and the tests import (pyproject.toml)."""

import ast
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "scripts" / "latex-packages.tsv"


def latex_table() -> list[tuple[str, str, str]]:
    rows = []
    for number, line in enumerate(TABLE.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        assert len(fields) == 3 and fields[0] in ("command", "class", "package"), f"{TABLE}:{number}: {line!r}"
        rows.append(tuple(fields))
    return rows


def paper_packages() -> set[tuple[str, str]]:
    """(kind, name) of every \\documentclass and \\usepackage of paper/main.tex."""
    text = (ROOT / "paper" / "main.tex").read_text(encoding="utf-8")
    text = re.sub(r"(?<!\\)%.*", "", text)  # comments
    used = set()
    for command, names in re.findall(r"\\(usepackage|documentclass)\s*(?:\[[^\]]*\])?\s*\{([^}]+)\}", text):
        kind = "class" if command == "documentclass" else "package"
        used |= {(kind, name.strip()) for name in names.split(",") if name.strip()}
    return used


def test_every_latex_package_of_the_paper_has_an_install_step():
    listed = {(kind, name) for kind, name, _ in latex_table()}
    used = paper_packages()
    assert ("package", "lmodern") in used and ("class", "article") in used
    assert used <= listed, f"paper/main.tex loads {sorted(used - listed)}, which {TABLE} does not list"


def test_the_setup_installs_from_the_table():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^tex:\n\tscripts/setup-tex$", makefile, flags=re.M), "make tex must run scripts/setup-tex"
    assert re.search(r"^setup:\n\t.*\btex\b", makefile, flags=re.M)
    assert re.search(r"^demo: setup$", makefile, flags=re.M) and re.search(r"^test: setup$", makefile, flags=re.M)


def _debian_closure(packages: set[str]) -> set[str]:
    """The packages and everything they depend on (hard dependencies only)."""
    completed = subprocess.run(
        [
            "apt-cache",
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            *sorted(packages),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return packages | {line.strip() for line in completed.stdout.splitlines() if re.match(r"^[a-z0-9]", line)}


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="not a Debian system: the paper's packages are not Debian's")
def test_each_latex_file_comes_from_a_package_the_setup_installs():
    """On this machine, the file kpsewhich finds for each class and package belongs to a Debian package the
    setup names (or one of their dependencies), so the build does not rest on something installed by hand."""
    rows = latex_table()
    closure = _debian_closure({package for _, _, package in rows})
    for kind, name, _ in rows:
        if kind == "command":
            path = shutil.which(name)
            assert path, f"{name} is not on the PATH: run scripts/setup-tex"
            path = str(Path(path).resolve())
        else:
            file = f"{name}.{'cls' if kind == 'class' else 'sty'}"
            path = subprocess.run(["kpsewhich", file], capture_output=True, text=True).stdout.strip()
            assert path, f"{file} is not installed: run scripts/setup-tex"
        owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        assert owner.returncode == 0, f"{path} ({name}) belongs to no Debian package"
        packages = {entry.strip() for entry in owner.stdout.split(":")[0].split(",")}
        assert packages & closure, f"{name} comes from {packages}, which the setup does not install"


# ---- Python packages ----


def _requirement_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {_normalise(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in requirements}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "importorskip" and node.args:
            if isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value.split(".")[0])
    return names


def test_every_imported_package_is_a_declared_dependency():
    """A module imported by the library, a workflow script or a test must come from a distribution that
    pyproject.toml names, not from one that happens to be installed as a dependency of another."""
    local = {"sbmoe", "conftest"} | {p.stem for p in (ROOT / "tests").glob("*.py")}
    providers = metadata.packages_distributions()
    declared = _requirement_names()
    undeclared = {}
    files = [
        *(ROOT / "src").rglob("*.py"),
        *(ROOT / "workflow" / "scripts").glob("*.py"),
        *(ROOT / "tests").rglob("*.py"),
    ]
    for path in files:
        for module in _imports(path) - local - set(sys.stdlib_module_names):
            distributions = {_normalise(d) for d in providers.get(module, [])}
            if not distributions & declared:
                undeclared.setdefault(module, []).append(str(path.relative_to(ROOT)))
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def _setup_copy(tmp_path: Path, extra_row: str = "", extra_package: str = "") -> Path:
    """scripts/ and paper/ in a scratch folder, with a row added to the table and a package to the paper."""
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    (tmp_path / "paper").mkdir()
    main = (ROOT / "paper" / "main.tex").read_text(encoding="utf-8")
    if extra_package:
        main = main.replace(r"\begin{document}", rf"\usepackage{{{extra_package}}}" + "\n" + r"\begin{document}", 1)
    (tmp_path / "paper" / "main.tex").write_text(main, encoding="utf-8")
    if extra_row:
        with (tmp_path / "scripts" / "latex-packages.tsv").open("a", encoding="utf-8") as handle:
            handle.write(extra_row + "\n")
    return tmp_path


def test_setup_refuses_a_paper_package_without_an_install_step(tmp_path):
    folder = _setup_copy(tmp_path, extra_package="siunitx")
    completed = subprocess.run(["bash", folder / "scripts" / "setup-tex"], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 1
    assert "paper/main.tex loads siunitx" in completed.stderr and "latex-packages.tsv" in completed.stderr


def test_setup_names_the_missing_file_and_its_package_when_it_cannot_install(tmp_path):
    folder = _setup_copy(
        tmp_path, extra_row="package\tnosuchstyle\tno-such-debian-package", extra_package="nosuchstyle"
    )
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "apt-get").write_text("#!/bin/sh\nexit 100\n")
    (fake / "apt-get").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
    completed = subprocess.run(
        ["bash", folder / "scripts" / "setup-tex"], capture_output=True, text=True, timeout=120, env=env
    )
    assert completed.returncode == 1
    assert (
        "error: nosuchstyle.sty is still missing: install the Debian package no-such-debian-package" in completed.stderr
    )
