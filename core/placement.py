"""Where the app keeps its model and in which dtype: `--device`/`--dtype` after `streamlit run app.py --`, or
the environment, else CUDA + bfloat16 when a GPU is present and CPU + float32 when not."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

from core.loading import DTYPES

DEVICES = ("cuda", "cpu", "auto")
DEVICE_ENV, DTYPE_ENV = "RELATION_NEURONS_DEVICE", "RELATION_NEURONS_DTYPE"


class PlacementError(ValueError):
    """A device or dtype the app cannot use; the message says what to pass instead."""


@dataclass(frozen=True)
class Placement:
    device: str  # cpu, cuda, or auto (accelerate spreads the model over the GPUs, then CPU memory)
    dtype: str
    chosen_by: str  # "argument", "environment" or "default", for the sidebar

    def describe(self) -> str:
        return f"{self.device}, {self.dtype} ({self.chosen_by})"


def choose_placement(device: str | None, dtype: str | None, cuda_available: bool,
                     chosen_by: str = "argument") -> Placement:
    device = (device or "").strip().lower() or None
    dtype = (dtype or "").strip().lower() or None
    if device is not None and device not in DEVICES:
        raise PlacementError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    if dtype is not None and dtype not in DTYPES:
        raise PlacementError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    if device == "cuda" and not cuda_available:
        raise PlacementError("device cuda was asked for, but no CUDA GPU is visible to this process: start the app "
                             "with --device cpu, or on a machine with a GPU")
    if device is None and dtype is None:
        chosen_by = "default"
    device = device or ("cuda" if cuda_available else "cpu")
    on_gpu = device == "cuda" or (device == "auto" and cuda_available)
    return Placement(device, dtype or ("bfloat16" if on_gpu else "float32"), chosen_by)


def app_placement(argv: Sequence[str], environ: Mapping[str, str], cuda_available: bool | None = None) -> Placement:
    """The app's placement: arguments first, then DEVICE_ENV/DTYPE_ENV, then the default."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--device")
    parser.add_argument("--dtype")
    known, _ = parser.parse_known_args(list(argv))
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    from_args = known.device is not None or known.dtype is not None
    device = known.device if known.device is not None else environ.get(DEVICE_ENV)
    dtype = known.dtype if known.dtype is not None else environ.get(DTYPE_ENV)
    return choose_placement(device, dtype, cuda_available, "argument" if from_args else "environment")


def process_placement() -> Placement:
    import sys

    return app_placement(sys.argv[1:], os.environ)
