"""Datasets for training and evaluation: the benchmark layouts, training views, synthetic data.

    ds = open_dataset("rain100h", "/data/Rain100H")       # whole images, for evaluation
    ds[0] -> {"input": (3,H,W) float32 in [0,1], "target": (3,H,W), "name": "rain-001"}
    train = TrainingPatches(open_dataset("rain100h-train", root, exclude="excluded.txt"), patch=100, seed=0)
    names()                                                # every registered dataset name
"""
from . import layouts  # noqa: F401  (registers the layouts)
from .blur import BlurStyle, add_motion_blur, motion_kernel
from .image_io import ImageReadError, read_image, write_image
from .pairs import DatasetError, DatasetWarning, ImageRef, Pair, PairedImages
from .photos import BUNDLED_PHOTOS, bundled_photo
from .rain import RAIN_PRESETS, RainStyle, add_rain
from .registry import names, open_dataset, register
from .views import TrainingPatches, dihedral

__all__ = [
    "BUNDLED_PHOTOS", "BlurStyle", "DatasetError", "DatasetWarning", "ImageReadError", "ImageRef", "Pair",
    "PairedImages", "RAIN_PRESETS", "RainStyle", "TrainingPatches", "add_motion_blur", "add_rain",
    "bundled_photo", "dihedral", "motion_kernel", "names", "open_dataset", "read_image", "register",
    "write_image",
]
