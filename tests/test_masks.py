import numpy as np
import pytest
import torch

from vjepa_ac.masks import MaskSet, block_shape, sample_masks, sample_target_mask

GRID = (4, 8, 8)
SETS = [MaskSet(8, 0.15), MaskSet(2, 0.7)]


def test_blocks_are_tubes_with_the_configured_area():
    rng = np.random.default_rng(0)
    for s in SETS:
        h, w = block_shape(s, 8, 8, rng)
        assert abs(h * w - s.spatial_scale * 64) <= 0.5 * (h + w) and h < 8 and w < 8
        m = sample_target_mask(s, GRID, (h, w), rng)
        assert all(np.array_equal(m[0], m[t]) for t in range(4))  # same spatial mask over time
        assert 0 < m.sum() < m.size


def test_context_and_targets_partition_and_stack():
    masks = sample_masks(6, GRID, SETS, np.random.default_rng(1))
    assert len(masks) == 2
    for ctx, tgt in masks:
        assert ctx.dtype == torch.int64 and ctx.shape[0] == tgt.shape[0] == 6
        for c, t in zip(ctx, tgt):
            assert len(set(c.tolist()) & set(t.tolist())) == 0
            assert torch.all(c[1:] > c[:-1]) and c.max() < 256 and t.max() < 256
    (c0, t0), (c1, t1) = masks
    assert c0.shape[1] > c1.shape[1]  # long-range blocks hide much more than short-range ones


def test_masks_are_a_function_of_the_generator_seed():
    draw = lambda seed: sample_masks(3, GRID, SETS, np.random.default_rng(seed))  # noqa: E731
    a, b, c = draw([3, 0, 2, 5]), draw([3, 0, 2, 5]), draw([3, 0, 2, 6])
    assert all(torch.equal(p, q) for m, n in zip(a, b) for p, q in zip(m, n))
    assert not all(torch.equal(p, q) for m, n in zip(a, c) for p, q in zip(m, n))


@pytest.mark.parametrize("bad, key", [
    (MaskSet(8, 1.2), "masks[0].spatial_scale"),
    (MaskSet(0, 0.2), "masks[0].num_blocks"),
    (MaskSet(2, 0.2, aspect_ratio=(1.5, 0.75)), "masks[0].aspect_ratio"),
    (MaskSet(2, 0.2, temporal_scale=0.0), "masks[0].temporal_scale"),
])
def test_bad_mask_config_names_the_key(bad, key):
    with pytest.raises(ValueError, match=key.replace("[", r"\[").replace("]", r"\]")):
        bad.validate("masks[0]")
