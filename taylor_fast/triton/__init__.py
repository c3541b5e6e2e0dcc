"""The Triton kernels: the derivative step and the whole expansion as implicit-GEMM Triton kernels
(tl.dot), registered as torch.ops.taylor_fast.triton_{step,expand}_{forward,backward} with the
schemas and autograd of the C++ ops. Importing this package imports triton (an ImportError here
is how the backend registry learns the backend is missing); taylor_fast/backends/_triton.py is
the backend that calls these ops."""
from .. import _autograd
from . import expand, step  # noqa: F401  (importing them registers the ops)
from ._registration import INTERPRETED, PREFIX, TRACEABLE
from ._tiling import shared_memory_shortfall

if not TRACEABLE:  # a triton_op's fake kernel is its body; an opaque custom_op needs these
    _autograd.register_fakes(PREFIX)

__all__ = ["INTERPRETED", "shared_memory_shortfall"]
