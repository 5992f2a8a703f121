import numpy as np
import pytest
import torch

from vjepa_ac.masks import MaskSet, MultiBlockMaskCollator, block_shape, sample_masks, sample_target_mask

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


def test_collator_is_deterministic_per_batch_and_across_workers():
    data = [torch.full((8, 3, 4, 4), float(i)) for i in range(12)]

    def run(workers):
        col = MultiBlockMaskCollator(GRID, SETS, seed=3)
        col.set_epoch(2)
        loader = torch.utils.data.DataLoader(data, batch_size=3, collate_fn=col, num_workers=workers)
        return list(loader)

    a, b = run(0), run(2)
    assert [x["batch_index"] for x in b] == [0, 1, 2, 3]
    for x, y in zip(a, b):
        assert torch.equal(x["video"], y["video"])
        assert all(torch.equal(p, q) for m, n in zip(x["masks"], y["masks"]) for p, q in zip(m, n))
    assert not torch.equal(a[0]["masks"][0][1], a[1]["masks"][0][1])
    col = MultiBlockMaskCollator(GRID, SETS, seed=3)
    col.set_epoch(2, start_batch=2)  # resuming mid-epoch draws the masks the full run drew
    assert torch.equal(col(data[6:9])["masks"][1][0], a[2]["masks"][1][0])


@pytest.mark.parametrize("bad, key", [
    (MaskSet(8, 1.2), "masks[0].spatial_scale"),
    (MaskSet(0, 0.2), "masks[0].num_blocks"),
    (MaskSet(2, 0.2, aspect_ratio=(1.5, 0.75)), "masks[0].aspect_ratio"),
    (MaskSet(2, 0.2, temporal_scale=0.0), "masks[0].temporal_scale"),
])
def test_bad_mask_config_names_the_key(bad, key):
    with pytest.raises(ValueError, match=key.replace("[", r"\[").replace("]", r"\]")):
        MultiBlockMaskCollator(GRID, [bad])
