"""The package's layout: modules talk to each other only through their public names.

Read from the source with :mod:`ast` (nothing is imported): every ``fluid_bayes/**/*.py``
declares ``__all__``; no module uses another module's underscore name (``from X import
_name``, ``import fluid_bayes._x``, ``module._name``); every name one module takes from
another is in that module's ``__all__``; no module is over ``MAX_LINES`` lines. Dunder
names (``__version__``) are public. The tests themselves may use private names.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fluid_bayes"
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@cache
def _tree(module: str) -> ast.Module:
    path = MODULES[module]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _all_value(module: str, node: ast.expr) -> set[str]:
    """The names of a module's ``__all__`` expression (``fluid_bayes.__init__`` derives its own)."""
    if module == "fluid_bayes" and isinstance(node, ast.Call):
        # __all__ = sorted([*_EXPORTS, "__version__"]): the keys of the _EXPORTS literal
        return set(_exports()) | {"__version__"}
    return set(ast.literal_eval(node))


@cache
def _declared_all(module: str) -> frozenset[str] | None:
    """A module's ``__all__`` (None when it has none), from its module-level assignments."""
    names: set[str] | None = None
    for node in _tree(module).body:
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                if node.value is None:
                    continue
                value = _all_value(module, node.value)
                names = value | (names or set()) if isinstance(node, ast.AugAssign) else value
    return None if names is None else frozenset(names)


def _exports() -> dict[str, str]:
    """``fluid_bayes._EXPORTS``: public name -> the module that defines it."""
    for node in _tree("fluid_bayes").body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets):
                return ast.literal_eval(node.value)
    raise AssertionError("fluid_bayes/__init__.py has no _EXPORTS")


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module of a ``from ... import`` (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if module not in MODULES or MODULES[module].name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _uses(module: str, tree: ast.Module | None = None):
    """Each ``(line, target module, name)`` that ``module`` takes from another fluid_bayes module.

    ``name`` is None for a plain ``import fluid_bayes.x``. A name of a module bound by an
    import (``import fluid_bayes.x as m``, ``from fluid_bayes.x import y`` where ``y`` is a
    module) is followed through attribute access: ``m.name`` counts as taking ``name``.
    """
    bound: dict[str, str] = {}  # local name -> fluid_bayes module it is bound to
    tree = _tree(module) if tree is None else tree
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "fluid_bayes":
                    continue
                yield node.lineno, alias.name, None
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound["fluid_bayes"] = "fluid_bayes"
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if target.split(".")[0] != "fluid_bayes":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:
                    yield node.lineno, sub, None
                    bound[alias.asname or alias.name] = sub
                else:
                    yield node.lineno, target, alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if not isinstance(inner, ast.Name) or inner.id not in bound:
                continue
            if isinstance(node.ctx, ast.Store | ast.Del):
                continue
            # the outermost attribute is handled once, from the innermost name outwards
            target = bound[inner.id]
            for attr in reversed(chain):
                sub = f"{target}.{attr}"
                if sub in MODULES:
                    target = sub
                    continue
                yield node.lineno, target, attr
                break


def _all_uses():
    seen = set()
    for module in MODULES:
        for line, target, name in _uses(module):
            if (module, line, target, name) not in seen:
                seen.add((module, line, target, name))
                yield module, line, target, name


def test_the_checks_see_every_form_of_use():
    """The walker finds private names taken by import, by module attribute and relatively."""
    source = """
from fluid_bayes.upkeep.checking import _mid_p, check_bank
import fluid_bayes._hidden
import fluid_bayes.adaptive.replay as r
from fluid_bayes.adaptive import replay
from . import checking
from .checking import _draw_index

def f():
    return r._grid_estimate, replay._replay_one, checking.plot_khat, fluid_bayes.irt._x
"""
    uses = set(_uses("fluid_bayes.upkeep.fake", ast.parse(source)))
    names = {(target, name) for _, target, name in uses}
    assert names >= {
        ("fluid_bayes.upkeep.checking", "_mid_p"),
        ("fluid_bayes.upkeep.checking", "check_bank"),
        ("fluid_bayes._hidden", None),
        ("fluid_bayes.adaptive.replay", "_grid_estimate"),
        ("fluid_bayes.adaptive.replay", "_replay_one"),
        ("fluid_bayes.upkeep.checking", "plot_khat"),
        ("fluid_bayes.upkeep.checking", "_draw_index"),
        ("fluid_bayes.irt", "_x"),
    }


def test_every_module_declares_all():
    missing = [m for m in MODULES if _declared_all(m) is None]
    assert not missing, f"modules without __all__: {missing}"


def test_all_names_exist():
    """Each name in a module's ``__all__`` is defined or imported at its top level."""
    wrong = []
    for module in MODULES:
        defined: set[str] = set()
        for node in _tree(module).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                defined |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            elif isinstance(node, ast.Import | ast.ImportFrom):
                defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
        if module == "fluid_bayes":
            defined |= set(_exports())  # imported on first use (PEP 562)
        wrong += [f"{module}.{n}" for n in sorted(_declared_all(module) or ()) if n not in defined]
    assert not wrong, f"names in __all__ that the module does not define: {wrong}"


def test_no_module_uses_another_modules_private_names():
    wrong = []
    for module, line, target, name in _all_uses():
        parts = target.split(".") + ([name] if name else [])
        if any(_private(p) for p in parts):
            wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}: {'.'.join(parts)}")
    assert not wrong, "private names used across modules:\n" + "\n".join(wrong)


def test_imported_names_are_in_all():
    wrong = []
    for module, line, target, name in _all_uses():
        if name is None or _private(name) or target == module:
            continue  # plain module imports; private names are the test above's
        if target not in MODULES:
            wrong.append(f"{module}:{line}: no module {target}")
        elif name not in (_declared_all(target) or ()):
            wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}: {target}.{name}")
    assert not wrong, "names imported but not in the module's __all__:\n" + "\n".join(wrong)


def test_lazy_exports_are_public_names_of_their_modules():
    """``fluid_bayes.<name>`` (imported on first use) is in its module's ``__all__``."""
    wrong = [
        f"{name} from {module}"
        for name, module in _exports().items()
        if module not in MODULES or name not in (_declared_all(module) or ())
    ]
    assert not wrong, f"fluid_bayes._EXPORTS names not public in their module: {wrong}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_not_too_long(module):
    n = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{MODULES[module]} has {n} lines (at most {MAX_LINES})"
