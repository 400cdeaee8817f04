"""The typed stubs (_core.pyi) list exactly what the extension exports, with the
same parameters."""

import ast
import inspect
from pathlib import Path

import ohmflow._core as core

STUB = Path(core.__file__).with_name("_core.pyi")
if not STUB.exists():  # editable installs keep the stub in the source tree
    STUB = Path(__file__).resolve().parents[1] / "python" / "ohmflow" / "_core.pyi"


def _stub_tree():
    return ast.parse(STUB.read_text())


def _public(names):
    return {n for n in names if not n.startswith("_")}


def test_module_names_match():
    tree = _stub_tree()
    stub_names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            stub_names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stub_names.add(node.target.id)
    assert _public(stub_names) == _public(dir(core)) - {"ohmflow"}


def _params(fn_node):
    a = fn_node.args
    names = [x.arg for x in a.posonlyargs + a.args if x.arg != "self"]
    return names, [x.arg for x in a.kwonlyargs]


def test_signatures_match():
    tree = _stub_tree()
    checked = 0
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            sig = inspect.signature(getattr(core, node.name))
            pos, kw = _params(node)
            assert [p.name for p in sig.parameters.values()
                    if p.kind != p.KEYWORD_ONLY] == pos, node.name
            assert [p.name for p in sig.parameters.values()
                    if p.kind == p.KEYWORD_ONLY] == kw, node.name
            checked += 1
        if isinstance(node, ast.ClassDef) and node.name == "CoreNetwork":
            cls = core.CoreNetwork
            stub_members = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
            assert _public(stub_members) == _public(dir(cls)), "CoreNetwork members"
            for n in node.body:
                if isinstance(n, ast.FunctionDef) and not n.decorator_list \
                        and n.name != "__init__":
                    sig = inspect.signature(getattr(cls, n.name))
                    pos, kw = _params(n)
                    got = [p.name for p in sig.parameters.values() if p.name != "self"]
                    assert got == pos + kw, n.name
                    checked += 1
    assert checked >= 15


def test_exception_hierarchy():
    assert issubclass(core.InvalidNetworkError, ValueError)
    for name in ("FloatingNodeError", "InfeasibleError", "ConvergenceError",
                 "SpiceParseError", "InvalidNetworkError"):
        assert issubclass(getattr(core, name), core.OhmflowError)
