"""Video I/O and VideoClipDataset on synthetic videos whose frames encode their own index."""

import logging

import av
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from vjepa_ac.data import VideoClipDataset, VideoError
from vjepa_ac.data.transforms import denormalize_frames
from vjepa_ac.data.video_io import probe_video, read_frames, read_video, worker_context, write_video


def indexed_frames(n: int, height: int = 32, width: int = 48, tag: int = 0) -> np.ndarray:
    """Flat frames: red = 8 * index, green = tag (tells videos apart), blue = 200."""
    frames = np.empty((n, height, width, 3), np.uint8)
    frames[..., 0] = (8 * np.arange(n) % 256)[:, None, None]
    frames[..., 1] = tag
    frames[..., 2] = 200
    return frames


def frame_ids(clip_uint8: np.ndarray) -> np.ndarray:
    return np.round(clip_uint8[..., 0].reshape(len(clip_uint8), -1).mean(1) / 8).astype(int)


def test_write_read_probe_round_trip(tmp_path):
    frames = indexed_frames(20)
    path = tmp_path / "v.mp4"
    write_video(path, frames, fps=5)
    info = probe_video(path, count_frames=True)
    assert (info.num_frames, info.fps, info.width, info.height, info.codec) == (20, 5.0, 48, 32, "h264")
    decoded = read_video(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - frames).max() <= 4  # lossy, but flat colours survive
    assert frame_ids(read_frames(path, [3, 7, 19])).tolist() == [3, 7, 19]
    assert not list(tmp_path.glob(".*partial"))  # the temp file was renamed away


@pytest.mark.parametrize("name,codec", [("a.mkv", "libx264"), ("a.webm", "libvpx-vp9"), ("a.avi", "mpeg4")])
def test_other_containers_are_read(tmp_path, name, codec):
    """Users' folders hold more than our mp4s; mkv and webm do not record a frame count in the header."""
    frames = indexed_frames(10)
    with av.open(str(tmp_path / name), mode="w") as container:
        stream = container.add_stream(codec, rate=5)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    assert probe_video(tmp_path / name).num_frames == 10
    ds = VideoClipDataset(tmp_path, frames_per_clip=5, frame_step=2, resolution=16, random_resized_crop=False)
    assert len(ds) == 1 and not ds.skipped
    assert frame_ids(denormalize_frames(ds[0])).tolist() == [0, 2, 4, 6, 8]


def test_write_video_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "a.mp4", np.zeros((3, 8, 8, 3), np.float32), fps=5)
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "b.mp4", np.zeros((3, 7, 8, 3), np.uint8), fps=5)


def test_clips_have_requested_frames_shape_and_normalisation(tmp_path):
    write_video(tmp_path / "a.mp4", indexed_frames(30, tag=10), fps=5)
    write_video(tmp_path / "sub" / "b.mp4", indexed_frames(13, tag=90), fps=5)  # found recursively
    ds = VideoClipDataset(tmp_path, frames_per_clip=4, frame_step=3, resolution=16, random_resized_crop=False)
    # span of a clip = (4 - 1) * 3 + 1 = 10 frames: 3 non-overlapping clips in a, 1 in b
    assert len(ds) == 4 and not ds.skipped
    clip = ds[1]
    assert clip.shape == (4, 3, 16, 16) and clip.dtype == torch.float32
    assert -2.2 < clip.min() and clip.max() < 2.7  # ImageNet-normalised range
    assert frame_ids(denormalize_frames(clip)).tolist() == [10, 13, 16, 19]
    assert abs(int(denormalize_frames(ds[3])[..., 1].mean()) - 90) <= 3


def test_random_resized_crop_keeps_clip_consistent(tmp_path):
    write_video(tmp_path / "a.mp4", indexed_frames(8, 64, 64), fps=5)
    torch.manual_seed(0)
    ds = VideoClipDataset(tmp_path, frames_per_clip=8, frame_step=1, resolution=24, random_resized_crop=True)
    clip = denormalize_frames(ds[0])
    assert clip.shape == (8, 24, 24, 3)
    assert frame_ids(clip).tolist() == list(range(8))


def test_bad_files_are_skipped_counted_and_reported_once(tmp_path, caplog):
    write_video(tmp_path / "good.mp4", indexed_frames(12), fps=5)
    write_video(tmp_path / "short.mp4", indexed_frames(3), fps=5)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "garbage.mkv").write_bytes(b"not a video at all" * 100)
    data = (tmp_path / "good.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.txt").write_text("ignored: not a video extension")
    with caplog.at_level(logging.WARNING):
        ds = VideoClipDataset(tmp_path, frames_per_clip=4, frame_step=1, resolution=16)
    assert sorted(p.rsplit("/", 1)[1] for p in ds.skipped) == ["empty.mp4", "garbage.mkv", "short.mp4", "truncated.mp4"]
    assert "too short" in ds.skipped[str(tmp_path / "short.mp4")]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 4 of 5 files" in warnings[0].getMessage()
    assert len(ds) == 3 and all(ds[i].shape == (4, 3, 16, 16) for i in range(3))


def test_file_failing_only_at_decode_is_skipped_and_replaced(tmp_path, caplog, monkeypatch):
    write_video(tmp_path / "a.mp4", indexed_frames(8, tag=10), fps=5)
    write_video(tmp_path / "b.mp4", indexed_frames(8, tag=90), fps=5)
    ds = VideoClipDataset(tmp_path, frames_per_clip=8, resolution=16, random_resized_crop=False)
    (tmp_path / "a.mp4").write_bytes(b"\x00" * 100)  # damaged after the dataset was built
    with caplog.at_level(logging.WARNING):
        first, again = ds[0], ds[0]
    assert abs(int(denormalize_frames(first)[..., 1].mean()) - 90) <= 3  # b's clip stands in
    assert torch.equal(first, again)
    assert list(ds.skipped) == [str(tmp_path / "a.mp4")]
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 1


def test_no_usable_videos_is_an_error(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="no usable video clips"):
        VideoClipDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="video folder not found"):
        VideoClipDataset(tmp_path / "missing")


def test_dataloader_workers_and_distributed_sampler(tmp_path):
    for tag in range(3):
        write_video(tmp_path / f"v{tag}.mp4", indexed_frames(16, tag=40 * tag), fps=5)
    ds = VideoClipDataset(tmp_path, frames_per_clip=4, frame_step=2, resolution=16, random_resized_crop=False)
    assert len(ds) == 6
    batches = list(DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context=worker_context(2)))
    assert [b.shape for b in batches] == [(2, 4, 3, 16, 16)] * 3
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        seen.append(list(sampler))
        assert len(list(DataLoader(ds, batch_size=3, sampler=sampler, num_workers=1,
                                   multiprocessing_context=worker_context(1)))) == 1
    assert sorted(seen[0] + seen[1]) == list(range(6))


def test_frame_cache_gives_the_clips_decoding_gives_and_is_keyed(tmp_path, monkeypatch):
    for tag in range(2):
        write_video(tmp_path / "videos" / f"v{tag}.mp4", indexed_frames(16, 32, 32, tag=90 * tag), fps=5)
    write_video(tmp_path / "videos" / "wide.mp4", indexed_frames(16, 32, 48), fps=5)  # not square: kept as is
    kwargs = dict(frames_per_clip=4, frame_step=2, resolution=32, random_resized_crop=True)
    direct, cached = VideoClipDataset(tmp_path / "videos", **kwargs), VideoClipDataset(tmp_path / "videos", **kwargs)
    cached.use_frame_cache(tmp_path / "cache", num_workers=2)
    for i in range(len(direct)):
        torch.manual_seed(i)
        a = direct[i]
        torch.manual_seed(i)
        assert torch.equal(a, cached[i])  # the same random crop of the same decoded frames

    monkeypatch.setattr("vjepa_ac.data.video.iter_frames", lambda path: pytest.fail("decoded again"))
    again = VideoClipDataset(tmp_path / "videos", **kwargs)
    again.use_frame_cache(tmp_path / "cache", build=False)  # a hit: nothing decoded
    for change in ({"resolution": 16}, {}):  # another resolution, then a changed file: other keys
        if not change:
            write_video(tmp_path / "videos" / "v0.mp4", indexed_frames(16, 32, 32, tag=5), fps=5)
        with pytest.raises(FileNotFoundError, match="built by rank 0"):
            VideoClipDataset(tmp_path / "videos", **{**kwargs, **change}).use_frame_cache(tmp_path / "cache",
                                                                                          build=False)


def test_frame_cache_shrinks_larger_videos_to_the_training_resolution(tmp_path):
    write_video(tmp_path / "v.mp4", indexed_frames(16, 64, 96), fps=5)
    ds = VideoClipDataset(tmp_path, frames_per_clip=4, frame_step=2, resolution=32, random_resized_crop=False)
    ds.use_frame_cache(tmp_path / "cache")
    assert ds.frame_cache.videos == [[0, 16, 32, 48]]  # short side 64 -> 32, aspect kept
    assert frame_ids(denormalize_frames(ds[1])).tolist() == [7, 9, 11, 13]  # clips start every 7 frames


def test_frame_cache_skips_files_that_fail_to_decode(tmp_path, caplog):
    write_video(tmp_path / "a.mp4", indexed_frames(8, tag=10), fps=5)
    write_video(tmp_path / "b.mp4", indexed_frames(8, tag=90), fps=5)
    ds = VideoClipDataset(tmp_path, frames_per_clip=8, resolution=16, random_resized_crop=False)
    (tmp_path / "a.mp4").write_bytes(b"\x00" * 100)  # damaged after the dataset was built
    with caplog.at_level(logging.WARNING):
        ds.use_frame_cache(tmp_path / "cache")
    assert list(ds.skipped) == [str(tmp_path / "a.mp4")] and "skipping" in caplog.text
    assert abs(int(denormalize_frames(ds[0])[..., 1].mean()) - 90) <= 3  # b's clip stands in
