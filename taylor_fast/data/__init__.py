"""Datasets for training and evaluation: the benchmark layouts, training views, synthetic data.

    ds = open_dataset("rain100h", "/data/Rain100H")       # whole images, for evaluation
    ds[0] -> {"input": (3,H,W) float32 in [0,1], "target": (3,H,W), "name": "rain-001"}
    open_dataset("set12", "/data/Set12", sigma=25)         # grey (1,H,W), noise made on the fly
    open_dataset("set5", "/data/Set5", scale=4)            # input (3,h,w), target (3,4h,4w)
    train = TrainingPatches(open_dataset("rain100h-train", root, exclude="excluded.txt"), patch=100, seed=0)
    names()                                                # every registered dataset name
"""
from . import layouts, layouts_denoise, layouts_sr  # noqa: F401  (register the layouts)
from ..resize import bicubic_downsample
from .blur import BlurStyle, add_motion_blur, motion_kernel
from .degradations import Bicubic, Noise
from .image_io import ImageReadError, read_image, write_image
from .pairs import DatasetError, DatasetWarning, ImageRef, Pair, PairedImages
from .photos import BUNDLED_PHOTOS, bundled_photo
from .rain import RAIN_PRESETS, RainStyle, add_rain
from .registry import names, open_dataset, register
from .views import TrainingPatches, dihedral

__all__ = [
    "BUNDLED_PHOTOS", "Bicubic", "BlurStyle", "DatasetError", "DatasetWarning", "ImageReadError", "ImageRef", "Pair",
    "Noise", "PairedImages", "RAIN_PRESETS", "RainStyle", "TrainingPatches", "add_motion_blur", "add_rain",
    "bicubic_downsample", "bundled_photo", "dihedral", "motion_kernel", "names", "open_dataset", "read_image", "register",
    "write_image",
]
