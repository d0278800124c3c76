"""The house's rules, checked on the source: one installed name, no import cycles.

Imports are read from the source (AST), function-local ones included: a cycle
hidden inside a function is still a cycle between two modules' jobs.
"""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import yt8m

ROOT = Path(__file__).resolve().parent.parent
STAGE_FOLDERS = [s for s in yt8m.STAGES if (ROOT / s).is_dir()]
BARE = set(yt8m.STAGES)


def _modules() -> dict[str, Path]:
    """``yt8m.<stage>.<module>`` (and ``yt8m.<module>``) -> source file."""
    out = {}
    for folder in ["yt8m", *STAGE_FOLDERS]:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            prefix = ["yt8m"] if folder == "yt8m" else ["yt8m", folder]
            out[".".join(prefix + parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module name) for every import in ``path``, resolved to modules."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # "from yt8m.compression import codec" imports the module yt8m.compression.codec
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                      if f"{node.module}.{a.name}" in MODULES]
    return found


def _python_sources() -> list[Path]:
    skip = {".git", "build", "dist", ".venv", "_work"}
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]


def test_every_stage_is_imported_through_the_one_installed_name():
    offenders = []
    for path in _python_sources():
        for line, name in _imports(path):
            if name.split(".")[0] in BARE:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: import {name}")
    assert not offenders, ("import the stages as yt8m.<stage> (the only installed name):\n"
                           + "\n".join(offenders))


def test_pyproject_installs_only_the_yt8m_namespace():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(p == "yt8m" or p.startswith("yt8m.") for p in tool["packages"])
    assert "py-modules" not in tool
    mapping = tool["package-dir"]
    for stage in STAGE_FOLDERS:
        assert mapping[f"yt8m.{stage}"] == stage


def test_the_checkout_is_what_runs():
    # From a source checkout the stages resolve to its folders, not to an installed copy.
    import yt8m.pipeline.schema as schema
    assert Path(schema.__file__).resolve() == (ROOT / "pipeline" / "schema.py").resolve()


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for _, name in _imports(path):
            # A package's __init__ is imported along with any of its modules; only
            # count a package when it is imported itself.
            if name in MODULES and name != mod:
                graph[mod].add(name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    graph = _graph()
    # A package's __init__ re-exporting its own modules is not a cycle between jobs.
    for mod in graph:
        graph[mod] = {m for m in graph[mod] if not mod.startswith(m + ".")}
    cycles = _cycles(graph)
    assert not cycles, "import cycles (modules importing each other, directly or not):\n" + \
        "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _project_imports():
    for mod, path in MODULES.items():
        for line, name in _imports(path):
            yield mod, path, line, name


def test_only_the_dispatch_table_reaches_a_cli_module():
    # A subcommand's cli module parses flags and calls a launcher; everything
    # else calls the launcher (or the library) itself.
    offenders = [f"{path.relative_to(ROOT)}:{line}: import {name}"
                 for mod, path, line, name in _project_imports()
                 if name.split(".")[-1] == "cli" and name in MODULES
                 and mod not in ("yt8m.cli", "yt8m.__main__")]
    assert not offenders, "\n".join(offenders)


def _calls(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name):
            yield node.lineno, f"{node.func.value.id}.{node.func.attr}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Attribute):
            yield node.lineno, f"{node.func.value.attr}.{node.func.attr}"


def test_every_counter_name_comes_from_yt8m_counters():
    offenders = [f"{path.relative_to(ROOT)}:{line}: {call}"
                 for mod, path in MODULES.items() if mod != "yt8m.counters"
                 for line, call in _calls(path) if call == "Metrics.counter"]
    assert not offenders, ("create counters with yt8m.counters (counter(), Counters) and "
                           "the names defined there:\n" + "\n".join(offenders))


def test_files_are_written_through_yt8m_fs():
    # The trainer's run folder is converted separately (its own room).
    writes = ("FileSystems.create", "FileSystems.rename")
    offenders = [f"{path.relative_to(ROOT)}:{line}: {call}"
                 for mod, path in MODULES.items()
                 if mod != "yt8m.fs" and not mod.startswith("yt8m.trainer")
                 for line, call in _calls(path) if call in writes]
    assert not offenders, ("write files with yt8m.fs (atomic_write, open_atomic, move):\n"
                           + "\n".join(offenders))


def test_the_call_finder_finds_calls(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from apache_beam.metrics import Metrics\nimport apache_beam as beam\n"
                   "Metrics.counter('yt8m', 'x')\nbeam.metrics.Metrics.counter('yt8m', 'y')\n"
                   "FileSystems.create(p)\n")
    assert [c for _, c in _calls(src)] == ["Metrics.counter", "Metrics.counter",
                                          "FileSystems.create"]
