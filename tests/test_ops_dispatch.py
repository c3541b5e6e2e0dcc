"""ops.taylor_expand / taylor_step: validation, backend choice (and taylor_fast.explain, which
says what it is) and agreement with the reference."""
import logging
import subprocess
import sys

import pytest
import torch

import taylor_fast
from backend_cases import available_backends, device_of
from sample_tensors import make_images, make_weights
from taylor_fast import backends, explain, ops, reference
from taylor_fast.backends import extension


def test_backends_reports_every_backend_with_a_reason():
    table = taylor_fast.backends()
    assert set(table) == {"reference", "cpu", "cuda", "triton"}
    for available, reason in table.values():
        assert isinstance(available, bool) and isinstance(reason, str) and reason
    assert table["reference"][0]
    if table["cpu"][0]:  # the CPU code path the kernels take on this machine
        assert f"{extension.cpu_isa()} code path" in table["cpu"][1]


@pytest.mark.parametrize("backend", ["auto", *available_backends()])
def test_explain_names_the_backend_the_op_runs(backend, monkeypatch):
    device = "cpu" if backend == "auto" else device_of(backend)
    f, y, *w = (t.to(device, torch.float32) for t in (*make_images(), *make_weights()))
    ran, choose = [], backends.choose

    def spy(*args):
        chosen = choose(*args)
        ran.append(chosen.name)
        return chosen

    monkeypatch.setattr(backends, "choose", spy)
    ops.taylor_expand(f, y, *w, 2, backend=backend)
    explanation = explain(f, y, *w, 2, backend=backend)
    assert ran == [explanation.backend]
    assert explanation.reasons[explanation.backend] is None
    assert set(explanation.reasons) == set(taylor_fast.backends())


def test_explain_gives_the_reason_of_every_backend_that_cannot_serve():
    f, y = make_images(dtype=torch.float32)
    w = make_weights(kernel=5, dtype=torch.float32)
    explanation = explain(f, y, *w, 2)
    assert explanation.backend == "reference" and explanation.reasons["reference"] is None
    for name, (available, why) in taylor_fast.backends().items():
        if not available:
            assert explanation.reasons[name] == f"not available: {why}"
    if taylor_fast.backends()["cpu"][0]:
        assert explanation.reasons["cpu"] == "G's kernels are 5x5; the fused kernels implement 3x3"


def test_explain_of_a_backend_that_cannot_serve_names_none_and_the_op_raises_its_reason():
    f, y = make_images(dtype=torch.float32)
    w = make_weights(kernel=5, dtype=torch.float32)
    for name in ("cpu", "cuda", "triton"):
        explanation = explain(f, y, *w, 2, backend=name)
        assert explanation.backend is None and explanation.reasons[name]
        with pytest.raises(RuntimeError) as raised:
            ops.taylor_expand(f, y, *w, 2, backend=name)
        assert str(raised.value).endswith(explanation.reasons[name])


def test_explain_at_order_zero_names_no_backend():
    f, y = make_images()
    explanation = explain(f, y, *make_weights(), 0)
    assert explanation.backend is None and explanation.reasons["reference"] is None


def test_explain_follows_the_environment_variable(monkeypatch):
    f, y = make_images()
    monkeypatch.setenv("TAYLOR_FAST_BACKEND", "reference")
    assert explain(f, y, *make_weights(), 2).backend == "reference"


def test_explain_refuses_malformed_arguments_as_the_op_does():
    f, y = make_images()
    with pytest.raises(ValueError, match="taylor_fast.explain: argument 'order' must be in"):
        explain(f, y, *make_weights(), -1)
    with pytest.raises(ValueError, match="taylor_fast.explain: argument 'backend'"):
        explain(f, y, *make_weights(), 2, backend="npu")


@pytest.mark.parametrize("order", [0, 1, 4])
@pytest.mark.parametrize("per_order", [False, True])
def test_auto_matches_reference(order, per_order):
    f, y = make_images()
    w = make_weights(orders=order if per_order else None)
    expected = reference.taylor_expand(f, y, *w, order, "leaky_relu", 0.1)
    torch.testing.assert_close(ops.taylor_expand(f, y, *w, order, "leaky_relu", 0.1), expected)


def test_step_matches_reference():
    g, y = make_images()
    acc = torch.rand_like(g)
    w = make_weights()
    got = ops.taylor_step(g, y, acc, *w, 2)
    for a, b in zip(got, reference.taylor_step(g, y, acc, *w, 2)):
        torch.testing.assert_close(a, b)


def test_order_zero_returns_f():
    f, y = make_images()
    assert ops.taylor_expand(f, y, *make_weights(), 0) is f


def test_unavailable_explicit_backend_raises_with_reason():
    f, y = make_images()
    unavailable = [name for name, (ok, _) in taylor_fast.backends().items() if not ok]
    if not unavailable:
        pytest.skip("every backend is available on this machine")
    with pytest.raises(RuntimeError, match=f"backend '{unavailable[0]}' cannot run this call"):
        ops.taylor_expand(f, y, *make_weights(), 1, backend=unavailable[0])


def test_environment_variable_overrides_auto(monkeypatch):
    f, y = make_images()
    monkeypatch.setenv("TAYLOR_FAST_BACKEND", "reference")
    torch.testing.assert_close(ops.taylor_expand(f, y, *make_weights(), 2),
                               reference.taylor_expand(f, y, *make_weights(), 2))
    monkeypatch.setenv("TAYLOR_FAST_BACKEND", "vulkan")
    with pytest.raises(ValueError, match="TAYLOR_FAST_BACKEND"):
        ops.taylor_expand(f, y, *make_weights(), 2)


def test_kernel_size_other_than_3_falls_back_to_reference(caplog):
    f, y = make_images(dtype=torch.float32)
    w = make_weights(kernel=5, dtype=torch.float32)
    with caplog.at_level(logging.DEBUG, logger="taylor_fast"):
        out = ops.taylor_expand(f, y, *w, 2)
    torch.testing.assert_close(out, reference.taylor_expand(f, y, *w, 2))
    if taylor_fast.backends()["cpu"][0]:
        assert "falling back to the reference" in caplog.text and "5x5" in caplog.text
        with pytest.raises(RuntimeError, match="3x3"):
            ops.taylor_expand(f, y, *w, 2, backend="cpu")


@pytest.mark.parametrize("mutate,error,match", [
    (lambda a: a.update(y=a["y"][:, :, :-1]), ValueError, "'y' must have the shape of 'f'"),
    (lambda a: a.update(f=a["f"][0]), ValueError, "'f' must be 4-D"),
    (lambda a: a.update(w1=a["w1"][:, :4]), ValueError, "'w1'"),
    (lambda a: a.update(b1=a["b1"][:-1]), ValueError, "'b1' must have shape"),
    (lambda a: a.update(w2=a["w2"][:2]), ValueError, "'w2' must have shape"),
    (lambda a: a.update(y=a["y"].long()), TypeError, "'y' must be a floating-point"),
    (lambda a: a.update(y=a["y"].to(torch.complex128)), TypeError, "'y' must be a floating-point"),
    (lambda a: a.update(y=a["y"].float()), TypeError, "'y' has dtype torch.float32 but 'f'"),
    (lambda a: a.update(order=-1), ValueError, "'order' must be in"),
    (lambda a: a.update(order=99), ValueError, "'order' must be in"),
    (lambda a: a.update(order=True), TypeError, "'order' must be an int"),
    (lambda a: a.update(activation="swish"), ValueError, "'activation'"),
    (lambda a: a.update(backend="npu"), ValueError, "'backend'"),
    (lambda a: a.update(f=[1.0]), TypeError, "'f' must be a torch.Tensor"),
])
def test_malformed_arguments_name_the_argument(mutate, error, match):
    f, y = make_images()
    w1, b1, w2, b2 = make_weights()
    args = dict(f=f, y=y, w1=w1, b1=b1, w2=w2, b2=b2, order=2, activation="relu", backend="auto")
    mutate(args)
    with pytest.raises(error, match=match):
        ops.taylor_expand(**args)


def test_per_order_weights_must_match_order():
    f, y = make_images()
    with pytest.raises(ValueError, match="one set per order"):
        ops.taylor_expand(f, y, *make_weights(orders=2), 3)


def test_step_rejects_per_order_weights_and_bad_k():
    g, y = make_images()
    with pytest.raises(ValueError, match="'w1'"):
        ops.taylor_step(g, y, g, *make_weights(orders=2), 0)
    with pytest.raises(ValueError, match="'k'"):
        ops.taylor_step(g, y, g, *make_weights(), -1)


FIRST_CALL_COMPILED = """
import torch
from taylor_fast import TaylorNet
torch.manual_seed(0)
net = TaylorNet(torch.nn.Conv2d(3, 3, 3, padding=1), order=3, hidden=8, backend={backend!r})
y = torch.rand(1, 3, 9, 11)
out = torch.compile(net, fullgraph=True, backend="aot_eager")(y)
torch.testing.assert_close(out, net(y))
"""


@pytest.mark.parametrize("backend", ["auto", "cpu"])
def test_compile_traces_when_it_makes_the_first_call_in_a_process(backend):
    """Backend probing (torch._C and pybind calls Dynamo cannot trace) must not run inside the
    traced code: in a fresh process, the first call of the op is the compiled one."""
    if backend == "cpu" and not taylor_fast.backends()["cpu"][0]:
        pytest.skip("the fused CPU kernels are not built")
    code = FIRST_CALL_COMPILED.format(backend=backend)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
