"""The Triton kernels' source keeps to what inductor can copy.

torch.compile turns a traced Triton kernel into a generated module of its own: it copies the
kernel's source and, recursively, every @triton.jit function the kernel names directly (and
module-level constexprs), nothing else. A helper called as `module.helper(...)` is not copied,
so the generated kernel refers to a module it does not have and fails to compile on the GPU.
This test reads each kernel's source and refuses such calls, without needing a GPU."""
import ast
import importlib
import inspect
import pkgutil
import types

import pytest
import triton.language as tl
from triton.runtime.jit import KernelInterface

import taylor_fast.triton

pytestmark = pytest.mark.triton


def jit_functions():
    """(qualified name, python function) of every @triton.jit function in taylor_fast.triton."""
    found = {}
    for info in pkgutil.iter_modules(taylor_fast.triton.__path__, "taylor_fast.triton."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, KernelInterface) and inspect.isfunction(getattr(value, "fn", None)):
                if value.fn.__module__ == module.__name__:
                    found[f"{module.__name__}.{name}"] = value.fn
    return found


def module_calls(source: str, namespace: dict) -> list[str]:
    """`alias.name(...)` calls in source where alias names (in namespace) a module other than
    Triton's own (tl.*, triton.language.* are what every kernel uses)."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            target = namespace.get(node.func.value.id)
            if isinstance(target, types.ModuleType) and not target.__name__.startswith("triton"):
                bad.append(f"{node.func.value.id}.{node.func.attr} (line {node.lineno})")
    return bad


def dedented_source(fn) -> str:
    lines = inspect.getsource(fn).splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines)


def test_the_kernels_were_found():
    names = jit_functions()
    assert "taylor_fast.triton.step._step_forward_kernel" in names
    assert "taylor_fast.triton.step._step_backward_kernel" in names
    assert "taylor_fast.triton._tiling.mm" in names


@pytest.mark.parametrize("name", sorted(jit_functions()))
def test_jit_functions_call_helpers_by_name(name):
    fn = jit_functions()[name]
    assert module_calls(dedented_source(fn), fn.__globals__) == [], (
        f"{name} calls a helper through a module attribute; import the helper by name so inductor's copy of the "
        "kernel includes it")


def test_the_check_sees_a_call_through_a_module():
    """The control: the check flags `_tiling.mm(...)` in a kernel's body, and not `tl.dot(...)`."""
    from taylor_fast.triton import _tiling

    source = "def kernel(a, b):\n    c = tl.dot(a, b)\n    return _tiling.mm(a, c, False)\n"
    assert module_calls(source, {"_tiling": _tiling, "tl": tl}) == ["_tiling.mm (line 3)"]
