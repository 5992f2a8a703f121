"""Energies: how far a predicted embedding is from the goal embedding (lower is better)."""
from __future__ import annotations

import torch

ENERGY_REDUCTIONS = ("final", "sum")
LATENT_ENERGIES = ("l1", "learned")  # a planner's latent_energy: L1 between latents, or the world model's learned distance


class NonFiniteEnergyError(RuntimeError):
    """Every candidate plan scored NaN/inf, so there is nothing to choose from."""


def latent_l1_energy(z_pred: torch.Tensor, z_goal: torch.Tensor, reduce: str = "final",
                     token_weights: torch.Tensor | None = None) -> torch.Tensor:
    """L1 distance between predicted embeddings z_pred [B, H, N, D] and the goal z_goal [1, N, D].

    Per step the distance is the mean absolute difference over tokens and features (so it does not
    grow with the token count), or with `token_weights` [N] (>= 0, a world model's `token_weights`:
    several camera views weighted, `planners.views`) the weighted mean over tokens; `reduce` keeps
    the final step ("final") or sums the steps ("sum"). Returns energies [B].
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
    per_token = (z_pred - z_goal.unsqueeze(1)).abs().mean(dim=-1)  # [B, H, N]
    if token_weights is None:
        per_step = per_token.mean(dim=-1)  # [B, H]
    else:
        if token_weights.shape != per_token.shape[-1:]:
            raise ValueError(f"token_weights must be [{per_token.shape[-1]}], got {tuple(token_weights.shape)}")
        weights = token_weights.to(per_token.device, per_token.dtype)
        per_step = (per_token * weights).sum(dim=-1) / weights.sum()
    return per_step[:, -1] if reduce == "final" else per_step.sum(dim=1)


def goal_energy(z_now: torch.Tensor, z_goal: torch.Tensor, weights: torch.Tensor | None = None) -> float:
    """The current frame's latent energy [1, N, D] to a goal [1, N, D] (what the subgoal switch and the
    two-level planner's replanning read)."""
    return float(latent_l1_energy(z_now[:, None], z_goal, token_weights=weights)[0])


def token_weights(world_model) -> torch.Tensor | None:
    """A world model's per-token energy weights [N] (`planners.views`), or None: every token alike."""
    return getattr(world_model, "token_weights", None)


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
