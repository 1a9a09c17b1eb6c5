"""golden's import contract: the README's architecture table, checked against the code (and rewritten from it).

The contract, read from the table in README.md ("## Architecture"):

- each row is a group of modules (a file, or a package directory: every module inside it);
- a module imports golden modules only from its own row or from rows ABOVE it (one direction:
  spec -> kernels -> trace -> vectors / reports), function-local imports included;
- there is no import cycle between modules (function-local imports included) and no private name
  (``_x``) imported from another module;
- a row's "imports" column names exactly the rows it imports (generated: ``--write`` rewrites it).

``python tools/layering.py`` prints every violation and exits 1 if there is one (CI runs it);
``--write`` regenerates the README's "imports" column from the code. Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FACADES = {"golden", "golden.__main__"}  # the package facade re-exports everything: it is no layer
ROW = re.compile(r"^\| (?P<what>[^|]+?) \| (?P<doc>.+) \| (?P<imports>[^|]*?) \|$")


def modules(root: Path = ROOT) -> dict:
    """dotted name -> path, for every module of the golden package."""
    out = {}
    for path in sorted((root / "golden").rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict) -> list:
    """(target module, [names], line) of every golden import in ``path``, at any depth (function-local too)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "golden"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.split(".")[0] != "golden":
                continue
            for a in node.names:  # `from pkg import mod` imports the module pkg.mod
                sub = f"{base}.{a.name}"
                found.append((sub, [], node.lineno) if sub in known else (base, [a.name], node.lineno))
    return [(t if t in known else _owner(t, known), names, line) for t, names, line in found]


def _owner(target: str, known: dict) -> str:
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target


def graph(root: Path = ROOT) -> tuple:
    """({module: {imported module: first line}}, [private-import violations])."""
    known = modules(root)
    edges, private = {}, []
    for name, path in known.items():
        edges[name] = {}
        for target, names, line in imports(name, path, known):
            if target == name or not target:
                continue
            edges[name].setdefault(target, line)
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    private.append(f"{path.relative_to(root)}:{line}: imports private {n} from {target}")
    return edges, private


def cycles(edges: dict) -> list:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def table(readme: str) -> list:
    """The architecture table's rows: (line index, [module prefixes], label, imports cell)."""
    lines = readme.splitlines()
    start = lines.index("## Architecture")
    rows = []
    for i in range(start, len(lines)):
        if lines[i].startswith("#") and i > start:
            break
        m = ROW.match(lines[i])
        if not m or m["what"].strip() in ("module", "---"):
            continue
        paths = re.findall(r"`(golden/[^`]*)`", m["what"])
        if not paths:  # tools/ and tests/ rows: outside the package, not layered here
            continue
        prefixes = [p.rstrip("/").removesuffix(".py").replace("/", ".") for p in paths]
        rows.append((i, prefixes, _label(paths[0]), m["imports"].strip()))
    return rows


def _label(path: str) -> str:
    return path.rstrip("/").removesuffix(".py").split("/")[-1]


def row_of(module: str, rows: list):
    """The index (in ``rows``) of the row that holds ``module``: the longest matching prefix."""
    best, best_len = None, -1
    for k, (_, prefixes, _, _) in enumerate(rows):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = k, len(p)
    return best


def check(root: Path = ROOT) -> tuple:
    """(violations, {row index: generated imports cell})."""
    edges, problems = graph(root)
    problems = list(problems)
    for comp in cycles(edges):
        problems.append("import cycle: " + " <-> ".join(comp))
    rows = table((root / "README.md").read_text())
    cells = {k: set() for k in range(len(rows))}
    for mod, targets in edges.items():
        if mod in FACADES:
            continue
        r = row_of(mod, rows)
        if r is None:
            problems.append(f"{mod}: no row of the README's architecture table holds it")
            continue
        for target, line in targets.items():
            if target in FACADES:
                problems.append(f"{mod}:{line}: imports the package facade {target} (import the module itself)")
                continue
            t = row_of(target, rows)
            if t is None or t == r:
                continue
            if t > r:
                problems.append(f"{mod}:{line}: imports {target}, a row BELOW it in the README's table "
                                f"({rows[t][2]} is under {rows[r][2]}): move the shared code up, or the row down")
            cells[r].add(t)
    generated = {k: ", ".join(rows[t][2] for t in sorted(ts)) or "-" for k, ts in cells.items()}
    for k, (_, _, label, cell) in enumerate(rows):
        if cell != generated[k]:
            problems.append(f"README: the {label} row says it imports '{cell}', the code imports "
                            f"'{generated[k]}' (python tools/layering.py --write)")
    return problems, {rows[k][0]: v for k, v in generated.items()}


def write(root: Path = ROOT) -> None:
    """Rewrite the README table's imports column from the code."""
    readme = root / "README.md"
    lines = readme.read_text().splitlines(keepends=True)
    _, cells = check(root)
    for i, cell in cells.items():
        m = ROW.match(lines[i].rstrip("\n"))
        lines[i] = f"| {m['what']} | {m['doc']} | {cell} |\n"
    readme.write_text("".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite the README's imports column from the code")
    a = ap.parse_args(argv)
    if a.write:
        write()
    problems, _ = check()
    for p in problems:
        print(p)
    n_mod = len(modules())
    print(f"layering: {n_mod} modules, {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
