"""Reading and writing video files with PyAV: the one place that touches codecs.

We write H.264 (libx264, yuv420p, no B-frames) in mp4: PyAV encodes it quickly here, and both our
readers and LeRobot's (torchcodec or torchvision's PyAV backend) decode it. Frame i of a file we
write has presentation time exactly i / fps, which LeRobot's timestamp-based reader relies on.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np

VIDEO_CODEC = "libx264"
VIDEO_CODEC_NAME = "h264"  # what the stream reports when read back
PIX_FMT = "yuv420p"


def worker_context(num_workers: int) -> str | None:
    """The `multiprocessing_context` of a DataLoader whose workers decode video: spawned, not forked.

    A worker forked after PyAV has decoded in the parent can deadlock inside libav (seen with av
    18.1: the worker hangs in `frame.to_ndarray`). `None` for an in-process loader (0 workers).
    """
    return "spawn" if num_workers > 0 else None


class VideoError(RuntimeError):
    """A video file that cannot be opened or decoded; the message names the file and the reason."""


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str


def write_video(path: str | Path, frames: np.ndarray, fps: int, crf: int = 20, gop: int = 16) -> None:
    """Encode uint8 `[T, H, W, 3]` frames to an mp4 at `path`, atomically (temp file, then rename)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"{path}: expected non-empty uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"{path}: {PIX_FMT} needs even frame sizes, got {width}x{height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream(VIDEO_CODEC, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, PIX_FMT
        stream.options = {"crf": str(crf), "bf": "0", "g": str(gop), "preset": "veryfast"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    os.replace(tmp, path)


def probe_video(path: str | Path, count_frames: bool = False) -> VideoInfo:
    """Header facts of a video file. Frames are counted by decoding when the container does not
    record them (webm, mkv) or when `count_frames` is set (catches truncated files)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            num_frames = stream.frames
            if count_frames or num_frames <= 0:
                num_frames = sum(1 for _ in container.decode(stream))
            info = VideoInfo(num_frames, fps, stream.codec_context.width, stream.codec_context.height,
                             stream.codec_context.name)
    except VideoError:
        raise
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"{path}: cannot read video ({type(e).__name__}: {e})") from e
    if info.num_frames == 0:
        raise VideoError(f"{path}: video has no frames")
    return info


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decode a file frame by frame: uint8 `[H, W, 3]` each (long videos never sit in memory whole)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
    except (av.FFmpegError, OSError, ValueError, IndexError) as e:
        raise VideoError(f"{path}: cannot decode video ({type(e).__name__}: {e})") from e


def read_video(path: str | Path) -> np.ndarray:
    """Decode every frame of a file to uint8 `[T, H, W, 3]`."""
    frames = list(iter_frames(path))
    if not frames:
        raise VideoError(f"{path}: video has no frames")
    return np.stack(frames)


def read_frames(path: str | Path, indices: list[int]) -> np.ndarray:
    """Decode the frames at the given (sorted, 0-based) indices to uint8 `[len(indices), H, W, 3]`.

    Seeks to the keyframe before the first index, then decodes forward; a frame's index comes from
    its presentation time, so files that do not start at time 0 work too.
    """
    wanted = {i: k for k, i in enumerate(indices)}
    out: list[np.ndarray | None] = [None] * len(indices)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate)
            start = stream.start_time or 0
            first_pts = start + int(round(indices[0] / fps / stream.time_base))
            container.seek(first_pts, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                idx = int(round((frame.pts - start) * stream.time_base * fps))
                if idx in wanted:
                    out[wanted[idx]] = frame.to_ndarray(format="rgb24")
                if idx >= indices[-1]:
                    break
    except (av.FFmpegError, OSError, ValueError, IndexError) as e:
        raise VideoError(f"{path}: cannot decode video ({type(e).__name__}: {e})") from e
    missing = [i for i, f in zip(indices, out) if f is None]
    if missing:
        raise VideoError(f"{path}: truncated video, frames {missing[:5]}{'...' if len(missing) > 5 else ''} missing")
    return np.stack(out)
