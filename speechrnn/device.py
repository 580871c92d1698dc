"""The device a model runs on, chosen once: "auto" is CUDA when there is a GPU, else the CPU."""

import torch

from .errors import UserError


def select_device(name: str = "auto") -> torch.device:
    """"auto" | "cpu" | "cuda" | "cuda:N" -> torch.device; a CUDA device on a machine without one is one line."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device {name!r}: not a device name; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r}: this machine has no CUDA GPU (or torch was built without CUDA); use "
                        "--device cpu or auto")
    return device
