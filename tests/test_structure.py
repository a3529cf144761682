"""The package's shape: no import cycle, no module over 400 lines, no function with more than
8 positional parameters, ruff clean."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "prefalign"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at any depth of its code (an import inside a
    function closes a cycle as surely as one at the top)."""
    modules = {module_name(f): f for f in package.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(here[:len(here) - node.level + 1] + [node.module or ""]) if node.level else node.module
                base = base.rstrip(".")
                found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each module that lies on one (depth-first, three colours)."""
    state, stack, found = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"
    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_resolves_relative_imports(tmp_path):
    pkg = tmp_path / "prefalign"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from .. import a\nfrom ..a import f\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        graph = import_graph(pkg)
    finally:
        ROOT = saved
    assert graph["prefalign.a"] == {"prefalign.sub.b"} and graph["prefalign.sub.b"] == {"prefalign.a"}
    assert cycles(graph) == [["prefalign.a", "prefalign.sub.b", "prefalign.a"]]


def test_no_import_cycle_in_the_package():
    assert cycles(import_graph(PACKAGE)) == []


def test_no_module_over_400_lines():
    long = {str(f.relative_to(ROOT)): n for f in PACKAGE.rglob("*.py") if (n := len(f.read_text().splitlines())) > 400}
    assert long == {}


def test_no_function_takes_more_than_8_positional_parameters():
    wide = []
    for f in [*PACKAGE.rglob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if len(node.args.posonlyargs) + len(node.args.args) > 8:
                    wide.append(f"{f.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert wide == []


def test_ruff_is_clean():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "prefalign", "scripts", "tests", "benchmarks"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_planning_the_workflow_imports_no_torch():
    """Snakemake reads each method's `needs` and `MODELS` at every start (a dry run, each job on
    a cluster); importing torch for that costs about 4 s each time."""
    code = ("import sys; from prefalign import config, provenance; from prefalign.methods import METHODS\n"
            "[(m.needs, getattr(m, 'MODELS', ())) for m in METHODS.values()]\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_the_readme_is_a_manual_that_names_both_commands_first():
    """The README is the manual (results live in docs/): at most 16,000 bytes, and its first
    code block is the two commands."""
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 16000
    first_block = text.split("```")[1]
    assert "make reproduce" in first_block and "make test" in first_block
    for doc in ("docs/methods.md", "docs/workflow.md", "docs/cluster.md", "docs/notes.md"):
        assert doc in text and (ROOT / doc).exists()
