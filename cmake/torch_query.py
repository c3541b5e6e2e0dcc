"""Write what CMake needs to know about the installed torch as a CMake script.

Run by CMakeLists.txt with the build's Python. find_package(Torch) is not used: on a
machine without a GPU its Caffe2 config looks for nvrtc and cuDNN and picks its own archs.
"""
import glob
import os
import sys


def cmake_list(paths):
    return ";".join(p.replace("\\", "/") for p in paths)


def main(out_path):
    import torch
    from torch.utils import cpp_extension

    site = os.path.dirname(os.path.dirname(torch.__file__))
    # pip-installed CUDA headers (cusparse.h, cublas_v2.h, ...) that ATen's CUDA headers include
    nvidia_includes = sorted(glob.glob(os.path.join(site, "nvidia", "*", "include")))
    values = {
        "TORCH_VERSION": torch.__version__,
        "TORCH_CUDA_VERSION": torch.version.cuda or "",
        "TORCH_CXX11_ABI": str(int(torch._C._GLIBCXX_USE_CXX11_ABI)),
        "TORCH_INCLUDE_DIRS": cmake_list(cpp_extension.include_paths()),
        "TORCH_LIBRARY_DIR": os.path.join(os.path.dirname(torch.__file__), "lib"),
        "TORCH_NVIDIA_INCLUDE_DIRS": cmake_list(nvidia_includes),
    }
    with open(out_path, "w") as fh:
        for key, value in values.items():
            fh.write(f'set({key} "{value}")\n')


if __name__ == "__main__":
    main(sys.argv[1])
