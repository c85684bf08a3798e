"""The package's shape: no import cycles, short signatures, one owner of the run folder, no patched globals."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "framer_nb"


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text()) for p in sorted(PACKAGE.glob("*.py"))}


def _imports(tree: ast.Module, names: set[str]) -> set[str]:
    """The package modules a module imports, at top level or inside functions."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("framer_nb."):
            out.add(node.module.split(".")[1])
    return out & names


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> list[str] | None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return path[path.index(m):] + [m] if m in path else [n, m]
            if m not in state and (found := visit(m, path + [m])):
                return found
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n, [n])):
            return found
    return None


def test_the_package_has_no_import_cycle():
    mods = _modules()
    graph = {name: _imports(tree, set(mods)) - {name} for name, tree in mods.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))
    assert graph["config"] <= {"paths"}, graph["config"]  # config is a leaf


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_function_takes_more_than_eight_parameters():
    long = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                params = [p for p in a.posonlyargs + a.args + a.kwonlyargs if p.arg not in ("self", "cls")]
                if len(params) > 8:
                    long.append(f"{name}.{node.name}: {len(params)}")
    assert not long, long


RUN_FILES = ('"run.json"', '"done.json"', '"checkpoint.safetensors"', '"heads.safetensors"', '"per_image.csv"',
             '"summary.json"', '"sr.pt"', '"__sr.png"', '"eval"', '"latents"', '"prompts"', ".parent.parent.parent")


def test_only_runs_py_builds_run_folder_paths():
    places = [ROOT / "notebooks", ROOT / "benchmarks", ROOT / "research", PACKAGE]
    found = []
    for folder in places:
        for p in folder.rglob("*"):
            if p.suffix not in (".py", ".ipynb") or p == PACKAGE / "runs.py":
                continue
            text = p.read_text()
            found += [f"{p.relative_to(ROOT)}: {s}" for s in RUN_FILES if s in text or s.replace('"', '\\"') in text]
    assert not found, found


def test_no_script_patches_a_package_attribute():
    """Benchmarks and research probes change behaviour through config fields and registry entries, never by
    assigning to an attribute of a framer_nb module or class."""
    patched = []
    for folder in (ROOT / "benchmarks", ROOT / "research"):
        for p in folder.rglob("*.py"):
            tree = ast.parse(p.read_text())
            aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                       and (n.module or "").startswith("framer_nb") for a in n.names}
            aliases |= {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                        for a in n.names if a.name.startswith("framer_nb")}
            for node in ast.walk(tree):
                targets = node.targets if isinstance(node, ast.Assign) else \
                    [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
                for t in (e for tgt in targets for e in (tgt.elts if isinstance(tgt, ast.Tuple) else [tgt])):
                    base = t.value if isinstance(t, (ast.Attribute, ast.Subscript)) else None
                    while isinstance(base, (ast.Attribute, ast.Subscript)):
                        base = base.value
                    if isinstance(t, (ast.Attribute, ast.Subscript)) and isinstance(base, ast.Name) \
                            and base.id in aliases:
                        patched.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    assert not patched, patched
