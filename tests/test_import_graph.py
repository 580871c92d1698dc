"""The package's import graph, read from the source: every `import` and `from ... import` of a speechrnn module,
at module level and inside functions alike, is an edge; the graph must have no cycle, so no module reaches back to
one that imports it (lower floors never import higher ones, not even lazily)."""

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "speechrnn"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that `name` (the module at `path`) imports anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from X import y`: y is a submodule of X, or a name defined in X
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                       for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in known and target != name)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = modules()
    return {name: imported(name, path, set(paths)) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), and modules importing themselves."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_imports_form_no_cycle():
    graph = import_graph()
    assert len(graph) > 30 and graph["speechrnn.recognizer"], "the graph was not read"
    assert cycles(graph) == []


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_inference_needs_no_trainer():
    """Loading and running a model (recognizer, the tasks' inference, the VAD, the faces) never imports the
    training loop; only the model floors and below, and the command line only above them."""
    graph = import_graph()
    users = ["speechrnn.recognizer", "speechrnn.vad", "speechrnn.streaming", "speechrnn.export", "speechrnn.serve",
             "speechrnn.mic", "speechrnn.tune", "speechrnn.fusion", "speechrnn.tasks.lm.inference",
             "speechrnn.tasks.classify.inference",
             "speechrnn.tasks.tagger.inference", "speechrnn.tasks.tagger.score", "speechrnn.tasks.tagger.labels"]
    for name in users:
        reached = reachable(graph, name)
        assert not {m for m in reached if m.startswith(("speechrnn.training", "speechrnn.cli"))}, name
    for name in graph:  # nothing below the command line imports it
        if not name.startswith("speechrnn.cli") and name != "speechrnn.__main__":
            assert not {m for m in graph[name] if m.startswith("speechrnn.cli")}, name


def test_the_cycle_finder_finds_a_hidden_cycle():
    """A cycle closed by a function-level import is one too."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_function_level_imports_are_edges(tmp_path, monkeypatch):
    package = tmp_path / "speechrnn"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from .high import g\n    return g\n")
    (package / "high.py").write_text("from . import low\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert cycles(import_graph()) == [["speechrnn.high", "speechrnn.low"]]
