"""Pixel conventions shared by datasets and the WorldModel (docs/architecture.md, "Frames").

Envs and files hold `uint8 [T, H, W, 3]`; models take `float [.., T, C, H, W]` normalised with the
ImageNet mean/std, as V-JEPA 2 does.
"""

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_frames(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 `[..., H, W, 3]` -> float32 `[..., 3, H, W]`, ImageNet-normalised."""
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if x.dtype != torch.uint8 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames [..., H, W, 3], got {x.dtype} {tuple(x.shape)}")
    x = x.movedim(-1, -3).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def denormalize_frames(x: torch.Tensor) -> np.ndarray:
    """Inverse of `normalize_frames`: float `[..., 3, H, W]` -> uint8 `[..., H, W, 3]`."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    img = ((x * std + mean).clamp(0, 1) * 255.0).round().to(torch.uint8)
    return img.movedim(-3, -1).cpu().numpy()
