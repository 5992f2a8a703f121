"""Energies: how far a predicted embedding is from the goal embedding (lower is better)."""
from __future__ import annotations

import torch

ENERGY_REDUCTIONS = ("final", "sum")


class NonFiniteEnergyError(RuntimeError):
    """Every candidate plan scored NaN/inf, so there is nothing to choose from."""


def latent_l1_energy(z_pred: torch.Tensor, z_goal: torch.Tensor, reduce: str = "final") -> torch.Tensor:
    """L1 distance between predicted embeddings z_pred [B, H, N, D] and the goal z_goal [1, N, D].

    Per step the distance is the mean absolute difference over tokens and features (so it does not
    grow with the token count); `reduce` keeps the final step ("final") or sums the steps ("sum").
    Returns energies [B].
    """
    if reduce not in ENERGY_REDUCTIONS:
        raise ValueError(f"energy reduce must be one of {ENERGY_REDUCTIONS}, got {reduce!r}")
    if z_pred.dim() != 4:
        raise ValueError(f"predicted embeddings must be [B, H, N, D], got shape {tuple(z_pred.shape)}")
    if z_goal.dim() != 3 or z_goal.shape[0] != 1 or z_goal.shape[1:] != z_pred.shape[2:]:
        raise ValueError(
            f"goal embedding must be [1, N, D] = [1, {z_pred.shape[2]}, {z_pred.shape[3]}] to match the "
            f"predictions, got {tuple(z_goal.shape)} (was the goal image encoded at another resolution?)"
        )
    per_step = (z_pred - z_goal.unsqueeze(1)).abs().mean(dim=(-2, -1))  # [B, H]
    return per_step[:, -1] if reduce == "final" else per_step.sum(dim=1)


def mask_non_finite(energies: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Replace NaN/-inf/+inf energies by +inf so no selection picks them; return (energies, skipped).

    Raises NonFiniteEnergyError when no candidate has a finite energy.
    """
    finite = torch.isfinite(energies)
    if not finite.any():
        raise NonFiniteEnergyError(
            f"all {energies.numel()} candidate energies are non-finite (NaN/inf): the world model's "
            "predictions or the goal embedding contain NaN/inf"
        )
    return energies.masked_fill(~finite, float("inf")), int((~finite).sum())
