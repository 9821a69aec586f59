"""Imports run one way through the package's layers (docs/architecture.md).

Reads the `ast` of every module of unified_mm (no import of the package, so
no jax: a fraction of a second) and collects every `import` statement naming a
unified_mm module, at module level and inside functions alike. Fails on

  - an import that runs up the layer order (a model importing a task),
  - a circle between packages (even of one layer: data -> train -> data),
  - a circle between modules (even through lazy, function-level imports),
  - a package with no place in the order,

naming each offending import as `file:line -> module`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "unified_mm"

# Bottom to top: a package may import its own layer's packages and those below.
LAYERS = (
    ("parallel", "config"),
    ("data", "train"),
    ("models",),
    ("tasks",),
    ("generate",),
    ("eval",),
    ("rl",),
    ("bench", "plan", "launch"),
    ("cli",),
)
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}


@dataclasses.dataclass(frozen=True)
class Import:
  source: str   # importing module, e.g. unified_mm.tasks.renderer
  target: str   # imported module, e.g. unified_mm.models.renderer.model
  where: str    # unified_mm/tasks/renderer.py:37

  def __str__(self) -> str:
    return f"{self.where} -> {self.target}"


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
  """The layer-holding package: unified_mm.tasks.renderer -> tasks ('' for the root)."""
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else ""


def _targets(node: ast.AST, module: str, is_package: bool, modules: set[str]) -> list[str]:
  """The unified_mm modules an import statement loads (most specific name known)."""
  if isinstance(node, ast.Import):
    names = [alias.name for alias in node.names]
  else:
    base = node.module or ""
    if node.level:  # relative: from the module's package, up level - 1 packages
      package = module.split(".") if is_package else module.split(".")[:-1]
      package = package[:len(package) - (node.level - 1)]
      base = ".".join(package + ([base] if base else []))
    # `from pkg import mod` loads pkg.mod; `from mod import name` loads mod.
    names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
  out = []
  for name in names:
    if name != "unified_mm" and not name.startswith("unified_mm."):
      continue
    while name not in modules and "." in name:  # `import a.b.c` of a name inside a.b
      name = name.rsplit(".", 1)[0]
    out.append(name)
  return list(dict.fromkeys(out))


@functools.cache  # one read of the package per test session
def read_imports() -> tuple[set[str], list[Import]]:
  files = sorted(PACKAGE.rglob("*.py"))
  modules = {module_name(f) for f in files}
  imports = []
  for f in files:
    source = module_name(f)
    tree = ast.parse(f.read_text(), filename=str(f))
    for node in ast.walk(tree):
      if isinstance(node, (ast.Import, ast.ImportFrom)):
        where = f"{f.relative_to(PACKAGE.parent)}:{node.lineno}"
        for target in _targets(node, source, f.name == "__init__.py", modules):
          if target != source:
            imports.append(Import(source, target, where))
  return modules, imports


def upward_imports(imports: list[Import]) -> list[str]:
  bad = []
  for imp in imports:
    src, dst = package_of(imp.source), package_of(imp.target)
    if src in RANK and dst in RANK and RANK[dst] > RANK[src]:
      bad.append(f"{imp}  ({src} is layer {RANK[src]}, {dst} is layer {RANK[dst]}: "
                 f"'{src}' may not import '{dst}')")
    elif src and dst == "":  # the root package sits above everything it would import
      bad.append(f"{imp}  (a layer imports the root package)")
  return bad


def cycles(edges: dict[str, dict[str, Import]]) -> list[list[Import]]:
  """One circle of imports per strongly connected component (Tarjan)."""
  index, low, stack, on_stack, components = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in edges.get(v, {}):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = set()
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.add(w)
        if w == v:
          break
      if len(component) > 1:
        components.append(component)

  for v in sorted(edges):
    if v not in index:
      visit(v)
  return [_circle(edges, component) for component in components]


def _circle(edges, component: set[str]) -> list[Import]:
  """A shortest path from the component's first node back to itself."""
  start = min(component)
  paths = {start: []}
  frontier = [start]
  while frontier:
    nxt = []
    for v in frontier:
      for w, imp in sorted(edges.get(v, {}).items()):
        if w == start:
          return paths[v] + [imp]
        if w in component and w not in paths:
          paths[w] = paths[v] + [imp]
          nxt.append(w)
    frontier = nxt
  raise AssertionError("a strongly connected component without a circle")


def _graph(imports: list[Import], key) -> dict[str, dict[str, Import]]:
  edges: dict[str, dict[str, Import]] = {}
  for imp in imports:
    a, b = key(imp.source), key(imp.target)
    if a != b:
      edges.setdefault(a, {}).setdefault(b, imp)
  return edges


def _describe(circles: list[list[Import]]) -> str:
  return "\n".join("circle:\n  " + "\n  ".join(map(str, c)) for c in circles)


def test_every_package_has_a_layer():
  modules, _ = read_imports()
  packages = {package_of(m) for m in modules} - {""}
  if not packages <= set(RANK):
    pytest.fail(f"packages with no layer: {sorted(packages - set(RANK))}; add them to LAYERS "
                "here and to docs/architecture.md", pytrace=False)


def test_imports_run_down_the_layers():
  _, imports = read_imports()
  bad = upward_imports(imports)
  if bad:
    pytest.fail("imports running up the layer order:\n" + "\n".join(bad), pytrace=False)


def test_no_circle_between_packages():
  _, imports = read_imports()
  circles = cycles(_graph(imports, package_of))
  if circles:
    pytest.fail("circles between packages:\n" + _describe(circles), pytrace=False)


def test_no_circle_between_modules():
  _, imports = read_imports()
  circles = cycles(_graph(imports, lambda m: m))
  if circles:
    pytest.fail("circles between modules:\n" + _describe(circles), pytrace=False)


def test_the_checker_sees_lazy_and_relative_imports():
  """The reader itself: function-level and relative imports count, names resolve to modules."""
  tree = ast.parse("def f():\n  from unified_mm.tasks import base\n  from . import flow\n"
                   "import unified_mm.models.renderer.model as m\n")
  modules = {"unified_mm.tasks", "unified_mm.tasks.base", "unified_mm.models.renderer",
             "unified_mm.models.renderer.flow", "unified_mm.models.renderer.model",
             "unified_mm.models.renderer.loader"}
  found = [t for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
           for t in _targets(node, "unified_mm.models.renderer.loader", False, modules)]
  assert sorted(found) == ["unified_mm.models.renderer.flow", "unified_mm.models.renderer.model",
                           "unified_mm.tasks.base"]
  up = upward_imports([Import("unified_mm.models.renderer.loader", "unified_mm.tasks.base",
                              "unified_mm/models/renderer/loader.py:2")])
  assert up and up[0].startswith("unified_mm/models/renderer/loader.py:2 -> unified_mm.tasks.base")
  a, b = "unified_mm.tasks.a", "unified_mm.tasks.b"
  circle, = cycles(_graph([Import(a, b, "a.py:1"), Import(b, a, "b.py:3")], lambda m: m))
  assert [str(i) for i in circle] == ["a.py:1 -> unified_mm.tasks.b", "b.py:3 -> unified_mm.tasks.a"]
