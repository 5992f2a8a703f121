"""Action-conditioned predictor (V-JEPA 2-AC): a block-causal transformer over frozen frame latents.

Each time step t is one block of tokens `[action_t, state_t, frame_t tokens (N)]`. Tokens attend
within their own block and to every earlier block, never to later ones, so the output at block t
depends only on frames, states and actions up to t. The output at block t's frame tokens is the
prediction of frame t+1's latents; with `predicts_state`, the output at its state token is the
prediction of state t+1 (learned proprioception: a gripper closed on an object stops at the object,
which integrating `state + action` does not know).

Positions are rotary (RoPE): the head's channel pairs are split in three parts rotated by the token's
time step, grid row and grid column; action and state tokens carry their time step and row = column = 0.

Two ways to run it, with the same weights and the same numbers:
- `forward(z, states, actions)`: a whole clip at once under the block-causal mask (training).
- `step(z_t, state_t, action_t, cache)`: one block at a time, reusing the keys/values of earlier
  blocks from `cache` (rollouts: the past is computed once, each new step costs one block).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def scale_or_one(std: torch.Tensor, min_std: float) -> torch.Tensor:
    """A normalisation scale per dimension: `std`, or 1 where it is below `min_std` (a constant dimension)."""
    return torch.where(std > min_std, std, torch.ones_like(std))


@dataclass
class ACPredictorConfig:
    """Sizes of the predictor. `embed_dim` and `grid` describe the frame latents it reads and writes."""

    embed_dim: int  # feature size D of the frame latents (the frozen encoder's width)
    grid: tuple[int, int]  # (rows, cols) of frame tokens; N = rows * cols
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    action_dim: int = 7
    state_dim: int = 7
    rope_theta: float = 10000.0
    residual: bool = True  # predict frame t+1 as layer_norm(z_t + change): "no motion" is the easy default
    predicts_state: bool = False  # also predict state t+1 (as state t + a change in state-std units)

    def __post_init__(self) -> None:
        self.grid = tuple(int(g) for g in self.grid)
        if self.dim % self.heads != 0:
            raise ValueError(f"predictor.dim={self.dim} is not divisible by predictor.heads={self.heads}")
        if self.dim // self.heads < 6 or (self.dim // self.heads) % 2:
            raise ValueError(f"predictor head size dim/heads = {self.dim // self.heads} must be even and >= 6 "
                             f"(3D RoPE)")

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]


def _rope(cfg: ACPredictorConfig, t: torch.Tensor, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Complex rotations `[L, 1, head_dim/2]` for tokens at integer positions (t, h, w), each `[L]`.

    Channel pairs (2i, 2i+1) of a head are rotated as one complex number; the first third of the
    pairs by t, the next by h, the next by w; leftover pairs are not rotated.
    """
    pairs = cfg.dim // cfg.heads // 2
    axis = pairs // 3
    inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(axis, dtype=torch.float32) / axis)
    angles = torch.cat([torch.outer(p.float(), inv_freq) for p in (t, h, w)], dim=-1)  # [L, 3*axis]
    angles = F.pad(angles, (0, pairs - 3 * axis))  # angle 0: identity on leftover pairs
    return torch.polar(torch.ones_like(angles), angles).unsqueeze(1)


def _apply_rope(qk: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate queries and keys `[B, L, 2, heads, head_dim]` by `rot [L, 1, head_dim/2]` (one complex product)."""
    x = torch.view_as_complex(qk.unflatten(-1, (-1, 2)))
    return torch.view_as_real(x * rot.unsqueeze(1)).flatten(-2)


class KVCache:
    """Keys/values of the blocks seen so far, one entry per layer, and the next time step."""

    def __init__(self, depth: int):
        self.keys: list[torch.Tensor | None] = [None] * depth
        self.values: list[torch.Tensor | None] = [None] * depth
        self.t = 0


class Block(nn.Module):
    """Pre-norm transformer block with rotary self-attention (SDPA)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x, rot, mask=None, cache: KVCache | None = None, layer: int = 0):
        B, L, D = x.shape
        qkv = self.qkv(self.norm1(x)).view(B, L, 3, self.heads, D // self.heads)
        q, k = _apply_rope(qkv[:, :, :2], rot).transpose(1, 3).unbind(2)  # [B, heads, L, head_dim] each
        v = qkv[:, :, 2].transpose(1, 2)
        if cache is not None:
            if cache.keys[layer] is not None:
                k = torch.cat([cache.keys[layer], k], dim=2)
                v = torch.cat([cache.values[layer], v], dim=2)
            cache.keys[layer], cache.values[layer] = k, v
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).reshape(B, L, D))
        return x + self.mlp(self.norm2(x))


class ACPredictor(nn.Module):
    """Predicts the next frame's latents from frames, proprioceptive states and actions so far."""

    def __init__(self, cfg: ACPredictorConfig):
        super().__init__()
        self.cfg = cfg
        self.frame_embed = nn.Linear(cfg.embed_dim, cfg.dim)
        self.action_embed = nn.Linear(cfg.action_dim, cfg.dim)
        self.state_embed = nn.Linear(cfg.state_dim, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.embed_dim)
        self.state_head = nn.Linear(cfg.dim, cfg.state_dim) if cfg.predicts_state else None
        self.apply(self._init_weights)
        # Per-dimension input normalisation of states and actions (set from the training data by
        # `set_input_stats`, saved with the weights): raw actions are centimetre-scale deltas, far too
        # small for a freshly initialised linear embedding to notice.
        self.register_buffer("state_mean", torch.zeros(cfg.state_dim))
        self.register_buffer("state_std", torch.ones(cfg.state_dim))
        self.register_buffer("action_std", torch.ones(cfg.action_dim))

    @torch.no_grad()
    def set_input_stats(self, states: torch.Tensor, actions: torch.Tensor, min_std: float = 1e-3) -> None:
        """Normalise states by their mean/std and actions by their std (zero stays "no motion"),
        over samples `states [..., S]`, `actions [..., A]`; constant dimensions keep scale 1."""
        s, a = states.reshape(-1, self.cfg.state_dim).float(), actions.reshape(-1, self.cfg.action_dim).float()
        self.state_mean.copy_(s.mean(0))
        self.state_std.copy_(scale_or_one(s.std(0), min_std))
        self.action_std.copy_(scale_or_one(a.pow(2).mean(0).sqrt(), min_std))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def _check_inputs(self, z: torch.Tensor, states: torch.Tensor, actions: torch.Tensor) -> None:
        cfg = self.cfg
        if z.shape[-2:] != (cfg.tokens_per_frame, cfg.embed_dim):
            raise ValueError(
                f"frame latents have {tuple(z.shape[-2:])} (tokens, features) per frame, but the predictor "
                f"expects ({cfg.tokens_per_frame}, {cfg.embed_dim}) (grid {cfg.grid}, embed_dim {cfg.embed_dim})"
            )
        if states.shape[-1] != cfg.state_dim:
            raise ValueError(f"state dimension is {states.shape[-1]}, but the predictor expects {cfg.state_dim}")
        if actions.shape[-1] != cfg.action_dim:
            raise ValueError(f"action dimension is {actions.shape[-1]}, but the predictor expects {cfg.action_dim}")

    def _positions(self, t0: int, steps: int):
        """(t, h, w) positions of `steps` blocks starting at time t0, in token order."""
        rows, cols = self.cfg.grid
        n = self.cfg.tokens_per_frame
        h = torch.cat([torch.zeros(2, dtype=torch.long), torch.arange(rows).repeat_interleave(cols)])
        w = torch.cat([torch.zeros(2, dtype=torch.long), torch.arange(cols).repeat(rows)])
        t = torch.arange(t0, t0 + steps).repeat_interleave(n + 2)
        return t, h.repeat(steps), w.repeat(steps)

    def _tokens(self, z, states, actions):
        """Embed inputs `[B, T, ...]` into `[B, T*(N+2), dim]`, block order [action, state, frame].

        Inputs with batch size 1 are embedded once and broadcast to the others' batch size.
        """
        B = max(z.shape[0], states.shape[0], actions.shape[0])
        T = z.shape[1]
        a = self.action_embed(actions / self.action_std).unsqueeze(2).expand(B, T, 1, -1)
        s = self.state_embed((states - self.state_mean) / self.state_std).unsqueeze(2).expand(B, T, 1, -1)
        f = self.frame_embed(z).expand(B, T, -1, -1)
        return torch.cat([a, s, f], dim=2).flatten(1, 2)

    def _readout(self, x: torch.Tensor, z: torch.Tensor,
                 states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Outputs `[B, T*(N+2), dim]` -> layer-normed latents `[B, T, N, D]` (inputs `z [B|1, T, N, D]`)
        and, with `predicts_state`, next states `[B, T, S]` (inputs `states [B|1, T, S]`; else None)."""
        x = x.unflatten(1, (z.shape[1], self.cfg.tokens_per_frame + 2))
        out = self.head(self.norm(x[:, :, 2:]))
        if self.cfg.residual:
            out = out + z
        next_states = (None if self.state_head is None else
                       states + self.state_head(self.norm(x[:, :, 1])) * self.state_std)
        return F.layer_norm(out, (out.shape[-1],)), next_states

    def forward(self, z: torch.Tensor, states: torch.Tensor,
                actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z `[B, T, N, D]`, states `[B, T, S]`, actions `[B, T, A]` (action t moves t -> t+1).

        Returns `[B, T, N, D]`: entry t is the prediction of frame t+1's latents, and with
        `predicts_state` `[B, T, S]`: the prediction of state t+1 (else None).
        """
        self._check_inputs(z, states, actions)
        T = z.shape[1]
        rot = _rope(self.cfg, *self._positions(0, T)).to(z.device)
        block = torch.arange(T).repeat_interleave(self.cfg.tokens_per_frame + 2)
        mask = (block[:, None] >= block[None, :]).to(z.device)
        x = self._tokens(z, states, actions)
        for blk in self.blocks:
            x = blk(x, rot, mask=mask)
        return self._readout(x, z, states)

    def new_cache(self) -> KVCache:
        return KVCache(self.cfg.depth)

    def step(self, z_t: torch.Tensor, state_t: torch.Tensor, action_t: torch.Tensor,
             cache: KVCache) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One block: z_t `[B, N, D]`, state_t `[B, S]`, action_t `[B, A]` -> prediction of frame t+1
        `[B, N, D]` and, with `predicts_state`, of state t+1 `[B, S]` (else None).

        Earlier blocks come from `cache` (updated in place); the batch size must stay the same.
        """
        self._check_inputs(z_t, state_t, action_t)
        rot = _rope(self.cfg, *self._positions(cache.t, 1)).to(z_t.device)
        x = self._tokens(z_t.unsqueeze(1), state_t.unsqueeze(1), action_t.unsqueeze(1))
        for i, blk in enumerate(self.blocks):
            x = blk(x, rot, cache=cache, layer=i)
        cache.t += 1
        z_next, state_next = self._readout(x, z_t.unsqueeze(1), state_t.unsqueeze(1))
        return z_next[:, 0], None if state_next is None else state_next[:, 0]
