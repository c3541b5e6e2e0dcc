"""Every malformed call of ops.taylor_expand / ops.taylor_step, on every backend,
raises a Python error naming the argument, what was expected and what was given, before any
backend is chosen (so before any kernel runs)."""
import pytest
import torch

from backend_cases import OPS, backend_params, call, image_names, marks_for, valid_arguments
from taylor_fast import backends


def _first(op):
    return image_names(op)[0]


def _resize(name, dim, size):
    """Spoil: argument `name` gets `size` along `dim` (fresh random values)."""
    def spoil(args, op):
        shape = list(args[name].shape)
        shape[dim] = size
        args[name] = torch.rand(shape, dtype=args[name].dtype)
    return spoil


def _set(name, value):
    def spoil(args, op):
        args[name] = value(args[name]) if callable(value) else value
    return spoil


def _set_first(value):
    def spoil(args, op):
        args[_first(op)] = value(args[_first(op)])
    return spoil


def _order(value):
    def spoil(args, op):
        args["order" if op == "taylor_expand" else "k"] = value
    return spoil


def _channels(c):
    """Images with c channels, weights for 3."""
    def spoil(args, op):
        for name in image_names(op):
            args[name] = torch.rand(2, c, 7, 9)
    return spoil


# (id, spoil, error type, pattern the message must match). Patterns use ARG for the spoiled
# argument's name where it depends on the op (f for taylor_expand, g for taylor_step).
CASES = [
    # N, H or W differing between the images
    ("y-batch", _resize("y", 0, 3), ValueError, r"'y' must have the shape of 'ARG' \(2, 3, 7, 9\), got \(3, 3, 7, 9\)"),
    ("y-height", _resize("y", 2, 6), ValueError, r"'y' must have the shape of 'ARG' \(2, 3, 7, 9\), got \(2, 3, 6, 9\)"),
    ("y-width", _resize("y", 3, 10), ValueError, r"'y' must have the shape of 'ARG' \(2, 3, 7, 9\), got \(2, 3, 7, 10\)"),
    ("y-channels", _resize("y", 1, 4), ValueError, r"'y' must have the shape of 'ARG' \(2, 3, 7, 9\), got \(2, 4, 7, 9\)"),
    # C not matching the weights
    ("channels-4-weights-3", _channels(4), ValueError, r"'w1' must have shape \(8, 8, 'k', 'k'\).*C = 4.*got \(8, 6, 3, 3\)"),
    ("channels-1-weights-3", _channels(1), ValueError, r"'w1' must have shape \(8, 2, 'k', 'k'\).*C = 1.*got \(8, 6, 3, 3\)"),
    ("w2-channels", _resize("w2", 0, 4), ValueError, r"'w2' must have shape \(3, 8, 3, 3\), got \(4, 8, 3, 3\)"),
    ("b2-channels", _resize("b2", 0, 4), ValueError, r"'b2' must have shape \(3,\), got \(4,\)"),
    # weights of the wrong rank or shape
    ("w1-3d", _set("w1", lambda w: w[0]), ValueError, r"'w1' must have shape \(hidden, 2C, k, k\).*got \(6, 3, 3\)"),
    ("w1-6d", _set("w1", lambda w: w[None, None]), ValueError, r"'w1'.*got \(1, 1, 8, 6, 3, 3\)"),
    ("w1-even-kernel", _set("w1", lambda w: w[..., :2, :2]), ValueError, r"'w1' must have shape .*k odd.*got \(8, 6, 2, 2\)"),
    ("w1-non-square", _set("w1", lambda w: w[..., :1, :]), ValueError, r"'w1' must have shape .*got \(8, 6, 1, 3\)"),
    ("w1-no-hidden", _set("w1", lambda w: w[:0]), ValueError, r"'w1' needs hidden >= 1 output channels, got shape \(0, 6, 3, 3\)"),
    ("b1-hidden", _resize("b1", 0, 7), ValueError, r"'b1' must have shape \(8,\), got \(7,\)"),
    ("b1-2d", _set("b1", lambda b: b[None]), ValueError, r"'b1' must have shape \(8,\), got \(1, 8\)"),
    ("w2-hidden", _resize("w2", 1, 4), ValueError, r"'w2' must have shape \(3, 8, 3, 3\), got \(3, 4, 3, 3\)"),
    ("w2-kernel", _set("w2", lambda w: torch.rand(3, 8, 5, 5)), ValueError, r"'w2' must have shape \(3, 8, 3, 3\), got \(3, 8, 5, 5\)"),
    ("b2-scalar", _set("b2", lambda b: b[0]), ValueError, r"'b2' must have shape \(3,\), got \(\)"),
    ("image-3d", _set_first(lambda t: t[0]), ValueError, r"'ARG' must be 4-D \(N, C, H, W\), got shape \(3, 7, 9\)"),
    ("image-no-width", _set_first(lambda t: t[..., :0]), ValueError, r"'ARG' needs C, H and W >= 1, got shape \(2, 3, 7, 0\)"),
    # integer, bool and complex dtypes, in the images and in the weights
    ("y-int64", _set("y", lambda t: t.long()), TypeError, r"'y' must be a floating-point tensor .*got dtype torch.int64"),
    ("image-uint8", _set_first(lambda t: (t * 255).to(torch.uint8)), TypeError, r"'ARG' must be a floating-point tensor .*got dtype torch.uint8"),
    ("y-bool", _set("y", lambda t: t > 0.5), TypeError, r"'y' must be a floating-point tensor .*got dtype torch.bool"),
    ("y-complex", _set("y", lambda t: t.to(torch.complex64)), TypeError, r"'y' must be a floating-point tensor .*got dtype torch.complex64"),
    ("w1-int32", _set("w1", lambda t: t.int()), TypeError, r"'w1' must be a floating-point tensor .*got dtype torch.int32"),
    ("b2-bool", _set("b2", lambda t: t > 0), TypeError, r"'b2' must be a floating-point tensor .*got dtype torch.bool"),
    ("w2-complex", _set("w2", lambda t: t.to(torch.complex128)), TypeError, r"'w2' must be a floating-point tensor .*got dtype torch.complex128"),
    # mixed dtypes
    ("y-float64", _set("y", lambda t: t.double()), TypeError, r"'y' has dtype torch.float64 but 'ARG' has torch.float32"),
    ("y-bfloat16", _set("y", lambda t: t.bfloat16()), TypeError, r"'y' has dtype torch.bfloat16 but 'ARG' has torch.float32"),
    ("w1-float64", _set("w1", lambda t: t.double()), TypeError, r"'w1' has dtype torch.float64 but 'y' has torch.float32"),
    ("b1-float16", _set("b1", lambda t: t.half()), TypeError, r"'b1' has dtype torch.float16 but 'y' has torch.float32"),
    ("b2-bfloat16", _set("b2", lambda t: t.bfloat16()), TypeError, r"'b2' has dtype torch.bfloat16 but 'y' has torch.float32"),
    # mixed devices ("meta" is a second device on any machine)
    ("y-meta", _set("y", lambda t: t.to("meta")), ValueError, r"'y' is on meta but 'ARG' is on cpu"),
    ("w1-meta", _set("w1", lambda t: t.to("meta")), ValueError, r"'w1' is on meta but 'y' is on cpu"),
    ("b2-meta", _set("b2", lambda t: t.to("meta")), ValueError, r"'b2' is on meta but 'y' is on cpu"),
    # not tensors at all
    ("image-list", _set_first(lambda t: t.tolist()), TypeError, r"'ARG' must be a torch.Tensor, got list"),
    ("w1-numpy", _set("w1", lambda t: t.numpy()), TypeError, r"'w1' must be a torch.Tensor, got ndarray"),
    ("b1-none", _set("b1", None), TypeError, r"'b1' must be a torch.Tensor, got NoneType"),
    # order / k negative, too large or not an int
    ("order-negative", _order(-1), ValueError, r"'ORDER' must be in \[0, \d+\], got -1"),
    ("order-too-large", _order(1000), ValueError, r"'ORDER' must be in \[0, \d+\], got 1000"),
    ("order-float", _order(2.0), TypeError, r"'ORDER' must be an int, got float 2.0"),
    ("order-bool", _order(True), TypeError, r"'ORDER' must be an int, got bool True"),
    ("order-str", _order("3"), TypeError, r"'ORDER' must be an int, got str '3'"),
    ("order-tensor", _order(torch.tensor(3)), TypeError, r"'ORDER' must be an int, got Tensor"),
    # unknown activation or backend, unusable slope
    ("activation-unknown", _set("activation", "swish"), ValueError, r"'activation' must be one of \('relu', 'leaky_relu'\), got 'swish'"),
    ("activation-case", _set("activation", "ReLU"), ValueError, r"'activation' must be one of .*got 'ReLU'"),
    ("activation-none", _set("activation", None), ValueError, r"'activation' must be one of .*got None"),
    ("slope-nan", _set("negative_slope", float("nan")), ValueError, r"'negative_slope' must be a finite number, got nan"),
    ("slope-str", _set("negative_slope", "0.2"), ValueError, r"'negative_slope' must be a finite number, got '0.2'"),
    ("backend-unknown", _set("backend", "npu"), ValueError, r"'backend' must be 'auto' or one of .*got 'npu'"),
    ("backend-case", _set("backend", "CPU"), ValueError, r"'backend' must be 'auto' or one of .*got 'CPU'"),
    ("backend-none", _set("backend", None), ValueError, r"'backend' must be 'auto' or one of .*got None"),
]
STEP_ONLY = [
    ("acc-width", _resize("acc", 3, 8), ValueError, r"'acc' must have the shape of 'g' \(2, 3, 7, 9\), got \(2, 3, 7, 8\)"),
    ("acc-float64", _set("acc", lambda t: t.double()), TypeError, r"'acc' has dtype torch.float64 but 'g' has torch.float32"),
    ("acc-meta", _set("acc", lambda t: t.to("meta")), ValueError, r"'acc' is on meta but 'g' is on cpu"),
    ("acc-int", _set("acc", lambda t: t.int()), TypeError, r"'acc' must be a floating-point tensor .*got dtype torch.int32"),
    ("per-order-weights", _set("w1", lambda t: t[None]), ValueError, r"'w1' must have shape \(hidden, 2C, k, k\).*got \(1, 8, 6, 3, 3\)"),
]
EXPAND_ONLY = [
    ("per-order-count", _set("w1", lambda t: torch.stack([t] * 3)), ValueError,
     r"per-order weights need one set per order: 'w1' has 3 sets .* but order is 2"),
    ("per-order-b1-shared", lambda a, op: a.update(w1=torch.stack([a["w1"]] * 2), w2=torch.stack([a["w2"]] * 2),
                                                   b2=torch.stack([a["b2"]] * 2)),
     ValueError, r"'b1' must have shape \(2, 8\), got \(8,\)"),
]


def cases():
    for op in OPS:
        extra = EXPAND_ONLY if op == "taylor_expand" else STEP_ONLY
        for case_id, spoil, error, pattern in CASES + extra:
            pattern = pattern.replace("ARG", _first(op)).replace("ORDER", "order" if op == "taylor_expand" else "k")
            yield pytest.param(op, spoil, error, pattern, id=f"{op}-{case_id}")


@pytest.fixture
def no_dispatch(monkeypatch):
    """Records any call that got past validation to the choice of a backend."""
    chosen = []
    original = backends.choose

    def spy(*args):
        chosen.append(args[0])
        return original(*args)

    monkeypatch.setattr(backends, "choose", spy)
    return chosen


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("op,spoil,error,pattern", list(cases()))
def test_malformed_call_is_refused_before_any_kernel(op, spoil, error, pattern, backend, no_dispatch):
    # CPU tensors whatever the backend: validation runs before any device is touched
    args = valid_arguments(op, backend=backend, device="cpu")
    spoil(args, op)
    with pytest.raises(error, match=pattern) as raised:
        call(op, args)
    assert str(raised.value).startswith(f"taylor_fast.ops.{op}: argument") or "per-order" in str(raised.value)
    assert no_dispatch == [], "validation let the call through to a backend"


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("op", OPS)
def test_valid_call_reaches_the_backend(op, backend, no_dispatch):
    """The control for the test above: the unspoilt arguments do run."""
    out = call(op, valid_arguments(op, backend=backend))
    assert no_dispatch == [backend]
    assert all(t.shape == (2, 3, 7, 9) and t.isfinite().all() for t in (out if isinstance(out, tuple) else (out,)))


@pytest.mark.parametrize("backend", [pytest.param(b, marks=marks_for(b, "meta")) for b in ("cpu", "triton", "cuda")])
@pytest.mark.parametrize("op", OPS)
def test_fused_backend_on_another_device_is_refused_in_python(op, backend):
    """Every tensor on "meta": a fused backend asked for explicitly raises a clear RuntimeError
    from Python (no kernel is looked up); "auto" takes the reference, which runs on meta."""
    args = valid_arguments(op, backend=backend, device="meta")
    with pytest.raises(RuntimeError, match=rf"taylor_fast.ops.{op}: backend '{backend}' cannot run this call: "):
        call(op, args)
    args["backend"] = "auto"
    out = call(op, args)
    assert all(t.device.type == "meta" and t.shape == (2, 3, 7, 9) for t in (out if isinstance(out, tuple) else (out,)))


def test_every_public_argument_is_covered():
    """Each argument of both ops is spoilt by at least one case above (so a new argument needs a case)."""
    import inspect

    from taylor_fast import ops

    spoilt = set()
    for op in OPS:
        for param in cases():
            if param.values[0] != op:
                continue
            args = valid_arguments(op)
            before = dict(args)
            param.values[1](args, op)
            spoilt |= {(op, name) for name in args if args[name] is not before[name]}
    for op in OPS:
        names = set(inspect.signature(getattr(ops, op)).parameters)
        assert {(op, n) for n in names} <= spoilt, sorted(names - {n for o, n in spoilt if o == op})
