"""The Triton backend: the derivative step and the whole expansion as implicit-GEMM Triton
kernels (tl.dot), registered as torch.ops.taylor_fast.triton_{step,expand}_{forward,backward}
with the schemas and autograd of the C++ ops. Importing this package imports triton (an
ImportError here is how the dispatcher learns the backend is missing)."""
from .backend import TritonBackend

__all__ = ["TritonBackend"]
