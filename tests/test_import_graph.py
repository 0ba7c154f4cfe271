"""The package's import graph: no cycles, no upward arrows (issue 13's "one house").

Every ``import`` of every module counts, the ones inside functions too: a lazy import still
makes the module depend on its target at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module_files() -> dict[str, Path]:
    """Dotted name -> file, for ``unitlab`` and the kernels installed as ``unitlab.kernels``."""
    files = {}
    for base, prefix in (
        (ROOT / "unitlab", ["unitlab"]),
        (ROOT / "kernels", ["unitlab", "kernels"]),
    ):
        for path in base.rglob("*.py"):
            parts = prefix + list(path.relative_to(base).with_suffix("").parts)
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def _targets(module: str, node: ast.Import | ast.ImportFrom, package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    here = module.split(".") if package else module.split(".")[:-1]
    base = ".".join(here[: len(here) - node.level + 1] + [node.module or ""]).strip(".")
    base = base if node.level else node.module
    # ``from . import report`` imports the submodule, not the package's own code
    submodules = [f"{base}.{alias.name}" for alias in node.names]
    return submodules + [base]


def import_graph() -> dict[str, set[str]]:
    files = _module_files()
    graph = {}
    for module, path in files.items():
        package = path.name == "__init__.py"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = _targets(module, node, package)
            found = [t for t in targets[:-1] if t in files]
            if not found:  # names imported from a module, or a module itself
                target = targets[-1]
                while target and target not in files:
                    target = target.rpartition(".")[0]
                found = [target] if target else []
            deps |= {t for t in found if t != module}
        graph[module] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                return path[path.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_known_edges():
    graph = import_graph()
    assert "unitlab.models" in graph["unitlab.trainer"]
    assert "unitlab.ablation" in graph["unitlab.explorers"]  # a lazy one
    assert "unitlab.kernels.reference" in graph["unitlab.ops"]


def test_no_import_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle(import_graph()) is None


def test_no_upward_imports():
    graph = import_graph()
    for module, deps in graph.items():
        if module.startswith("unitlab.kernels"):  # the kernels know nothing of unitlab
            assert all(d.startswith("unitlab.kernels") for d in deps), (module, deps)
        if module.startswith("unitlab.data"):  # data knows no models, trainers or runs
            allowed = ("unitlab.data", "unitlab.images", "unitlab.config")
            assert all(d.startswith(allowed) for d in deps), (module, deps)
        if module != "unitlab.__main__":  # `python -m unitlab` is the command line
            assert "unitlab.cli" not in deps, f"{module} imports the command line"
        assert not any(d.startswith("benchmarks") for d in deps), module
