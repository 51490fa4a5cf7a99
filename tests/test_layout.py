"""The package's import graph, read from the source (not from what happens to be imported): no cycles,
nothing of scripts/, and the lower layers know nothing of the apps."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nlp_lstm"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def without_type_checking(tree: ast.Module) -> ast.Module:
    """The module without its `if TYPE_CHECKING:` blocks: imports for annotations that never run."""
    for node in ast.walk(tree):
        for name in ("body", "orelse"):
            block = getattr(node, name, None)
            if isinstance(block, list):
                setattr(node, name, [child for child in block if not is_type_checking(child)])
    return tree


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its body (functions included)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: set[str] = set()
        for node in ast.walk(without_type_checking(ast.parse(path.read_text(encoding="utf-8")))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                submodules = {f"{node.module}.{alias.name}" for alias in node.names}
                imported |= submodules
                if not submodules <= set(modules):  # `from package import module` runs only what every
                    imported.add(node.module)  # import of the package's modules runs: not an edge of its own
        graph[name] = {other for other in imported if other in modules and other != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a list of modules (first = last), or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for other in sorted(graph[node]):
            if state.get(other) == 1:
                return path[path.index(other) :] + [other]
            if other not in state and (cycle := visit(other)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_in_the_package():
    assert find_cycle(import_graph()) is None


def test_the_package_never_reaches_into_scripts():
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(name.split(".")[0] == "scripts" for name in names), path
        assert "spec_from_file_location" not in source, f"{path} loads a file by path"


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_shared_modules_import_no_app():
    """The modules at the top of the package (the layer, text, data, training, the model folder...) import
    neither app nor the command line."""
    graph = import_graph()
    # The modules that are files at the top of the package (not the API, the apps or the command line).
    shared = [name for name in graph if name.count(".") == 1 and (PACKAGE / f"{name.split('.')[1]}.py").is_file()]
    shared.remove("nlp_lstm.__main__")
    assert "nlp_lstm.cell" in shared and "nlp_lstm.training" in shared
    for name in shared:
        above = {other for other in graph[name] if any(in_package(other, f"nlp_lstm.{app}")
                                                       for app in ("sentiment", "nextword", "cli"))}  # fmt: skip
        assert not above, f"{name} imports {sorted(above)}"


def test_the_next_word_app_never_imports_the_sentiment_app():
    graph = import_graph()
    for name, imported in graph.items():
        if in_package(name, "nlp_lstm.nextword"):
            assert not {other for other in imported if in_package(other, "nlp_lstm.sentiment")}, name


def test_each_app_is_a_folder_whose_files_name_their_roles():
    roles_of = {
        "sentiment": {"config", "model", "train", "evaluate", "predict", "export"},
        "nextword": {"config", "model", "train", "evaluate", "generate", "prompt", "export"},
    }
    for app, roles in roles_of.items():
        files = {path.stem for path in (PACKAGE / app).glob("*.py")}
        assert roles <= files, f"nlp_lstm/{app}/ lacks {sorted(roles - files)}"
