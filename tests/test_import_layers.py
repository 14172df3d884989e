"""The house's arrows run one way (DESIGN.md, rule 7), checked on the source itself.

Every `import` in every module of the four code folders is read with `ast`, the
imports inside functions too (a lazy import is still an arrow), and mapped to the
module it names. Then:
- each layer imports only the layers below it (ALLOWED);
- the device side of models/ (DEVICE_MODELS) imports nothing of the learning side;
- no module reaches itself again through the imports (no cycles, lazy ones included).
"""
import ast
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("common", "hardware", "models", "firmware")

# Layer -> the layers it may import (itself included). `common` is the bottom: the
# one-line error convention every layer shares. The firmware (the instrument and the
# command line) sits on top of everything.
ALLOWED: Dict[str, Set[str]] = {
    "common": {"common"},
    "hardware": {"common", "hardware"},
    "models": {"common", "models"},
    "firmware": {"common", "hardware", "models", "firmware"},
}
# The part of models/ the module runs (no torch, Python 3.8): it may import only itself
# and common, never the learning side.
DEVICE_MODELS = ("neurorave.models.runtime", "neurorave.models.audibility",
                 "neurorave.models")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["neurorave"] + parts)


def all_modules() -> Dict[str, Path]:
    found = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imports_of(name: str, path: Path, known: Set[str],
               source: Optional[str] = None) -> List[Tuple[str, int]]:
    """(imported neurorave module, line) for every import statement in the file (or in
    `source`, read as if it were that file)."""
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(text, filename=str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        targets: List[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[:len(up) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            # `from a.b import c` names module a.b.c when c is a module, else a.b.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        for target in targets:
            if not target.startswith("neurorave."):
                continue
            # The longest known module the name starts with (attribute imports).
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known and target != name:
                found.append((target, node.lineno))
    return found


def graph() -> Dict[str, List[Tuple[str, int]]]:
    modules = all_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def layer(module: str) -> str:
    return module.split(".")[1]


def upward_arrows(edges: Dict[str, List[Tuple[str, int]]]) -> List[str]:
    wrong = []
    for source, targets in edges.items():
        for target, line in targets:
            if layer(target) not in ALLOWED[layer(source)]:
                wrong.append(f"{source}:{line} imports {target}")
            elif (source.startswith(DEVICE_MODELS[0]) or source in DEVICE_MODELS[1:]) \
                    and layer(target) == "models" \
                    and not (target.startswith(DEVICE_MODELS[0]) or target in DEVICE_MODELS[1:]):
                wrong.append(f"{source}:{line} (device side) imports {target} (learning side)")
    return wrong


def cycles(edges: Dict[str, List[Tuple[str, int]]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(t for t, _ in edges[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(t for t, _ in edges.get(child, []))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_every_layer_imports_only_the_layers_below_it():
    edges = graph()
    assert len(edges) > 100 and sum(len(t) for t in edges.values()) > 200  # it read the code
    assert upward_arrows(edges) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_checks_can_fail():
    # An upward arrow, a device-side import of the learning side, and a cycle, in a graph
    # made up here: each is reported.
    edges = {
        "neurorave.hardware.gates": [("neurorave.firmware.voice", 3)],
        "neurorave.models.runtime.engines": [("neurorave.models.training.run", 7)],
        "neurorave.models.training.run": [("neurorave.models.config", 1)],
        "neurorave.models.config": [("neurorave.models.training.run", 2)],
        "neurorave.firmware.voice": [("neurorave.hardware.gates", 1)],
    }
    assert upward_arrows(edges) == [
        "neurorave.hardware.gates:3 imports neurorave.firmware.voice",
        "neurorave.models.runtime.engines:7 (device side) imports "
        "neurorave.models.training.run (learning side)",
    ]
    assert sorted(map(tuple, cycles(edges))) == [
        ("neurorave.firmware.voice", "neurorave.hardware.gates"),
        ("neurorave.models.config", "neurorave.models.training.run"),
    ]


@pytest.mark.parametrize("source,expected", [
    ("from neurorave.models.runtime import engines\n", "neurorave.models.runtime.engines"),
    ("from neurorave.models.runtime.engines import open_engine\n",
     "neurorave.models.runtime.engines"),
    ("def f():\n    from . import engines\n", "neurorave.models.runtime.engines"),
    ("import neurorave.models.runtime.bundle as b\n", "neurorave.models.runtime.bundle"),
])
def test_imports_are_read_in_every_form(source, expected):
    # Read as if it were models/runtime/bench.py (for the relative import).
    path = ROOT / "models" / "runtime" / "bench.py"
    found = imports_of(module_name(path), path, set(all_modules()), source)
    assert [t for t, _ in found] == [expected]
