"""Fixtures for the processing tests: small images of known pixels, written to tmp files."""
import io

import numpy as np
import pytest
from django.http import QueryDict
from PIL import Image

from processing.operations import parse_operation


def save(path, im, fmt, **options):
    """Write ``im`` to ``path`` as ``fmt``; returns the path as a string."""
    im.save(path, fmt, **options)
    return str(path)


def decode(data):
    """Bytes -> (loaded PIL image, numpy array)."""
    im = Image.open(io.BytesIO(data))
    im.load()
    return im, np.asarray(im)


def run(query, path, content_type="application/octet-stream"):
    """Parse ``query`` (a query string) and run it on ``path``."""
    return parse_operation(QueryDict(query)).run(path, content_type)


@pytest.fixture
def known():
    """A 12x8 RGB array of seeded random pixels (every value distinct enough for exact checks)."""
    return np.random.default_rng(1234).integers(0, 256, size=(8, 12, 3), dtype=np.uint8)


@pytest.fixture
def known_png(tmp_path, known):
    return save(tmp_path / "known.png", Image.fromarray(known, "RGB"), "PNG")


@pytest.fixture
def ramp():
    """A 16x16 RGB array whose R channel walks all of 0..255 (G reversed, B scrambled): point-op tables."""
    i = np.arange(256, dtype=np.uint8).reshape(16, 16)
    return np.stack([i, 255 - i, (i.astype(np.int32) * 7 % 256).astype(np.uint8)], axis=-1)


@pytest.fixture
def ramp_png(tmp_path, ramp):
    return save(tmp_path / "ramp.png", Image.fromarray(ramp, "RGB"), "PNG")


@pytest.fixture
def photo_jpeg(tmp_path):
    """A 1920x1080 JPEG with smooth content and a little noise."""
    y, x = np.mgrid[0:1080, 0:1920]
    rgb = np.stack([x * 255 // 1919, y * 255 // 1079, (x + y) * 255 // 2998], axis=-1).astype(np.uint8)
    return save(tmp_path / "photo.jpg", Image.fromarray(rgb, "RGB"), "JPEG", quality=90)


# ------------------------------------------------------------------ videos
# Generated once per test session with the ffmpeg that imageio-ffmpeg ships (the one
# processing.video uses), small and short so the whole set takes about a second.

VIDEO_FRAME_STEP = 5  # luma step per frame in the "indexed" videos: frame n has Y = 16 + 5n


def ffmpeg_exe():
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def make_video(path, *args):
    """Run the bundled ffmpeg to write ``path``; returns it as a string."""
    import subprocess

    subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", *args, str(path)], check=True)
    return str(path)


def frame_index(jpeg):
    """Which frame of an "indexed" video a grabbed JPEG shows (from its mean brightness)."""
    im, _ = decode(jpeg)
    mean = float(np.asarray(im.convert("L"), dtype=np.float64).mean())
    return round(mean / (VIDEO_FRAME_STEP * 255 / 219))  # limited-range luma -> full-range grey


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def timer_video(video_dir):
    """4 s, 160x120, 25 fps H.264 MP4 of ffmpeg's testsrc (a counter and moving patterns), a keyframe each second."""
    return make_video(video_dir / "timer.mp4", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=4",
                      "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25")


@pytest.fixture(scope="session")
def indexed_video(video_dir):
    """4 s, 64x48, 10 fps H.264 whose frame n is flat grey Y=16+5n; keyframes at 0 and 2 s, B-frames (some
    of them non-reference: -qp 0 lossless would turn B-frames off, so a near-lossless qp)."""
    return make_video(video_dir / "indexed.mp4", "-f", "lavfi",
                      "-i", f"color=c=black:s=64x48:r=10:d=4,geq=lum='16+{VIDEO_FRAME_STEP}*N':cb=128:cr=128",
                      "-c:v", "libx264", "-pix_fmt", "yuv420p", "-qp", "4", "-g", "20", "-bf", "3",
                      "-x264-params", "b-adapt=0")


@pytest.fixture(scope="session")
def indexed_webm(video_dir, indexed_video):
    """The indexed video as VP9 in WebM."""
    return make_video(video_dir / "indexed.webm", "-i", indexed_video, "-c:v", "libvpx-vp9", "-lossless", "1",
                      "-g", "20")


@pytest.fixture(scope="session")
def indexed_ts(video_dir, indexed_video):
    """The indexed video remuxed to MPEG-TS with a 1.4 s timestamp offset (start != 0, no seek index)."""
    return make_video(video_dir / "indexed.ts", "-i", indexed_video, "-c", "copy", "-output_ts_offset", "1.4",
                      "-f", "mpegts")


@pytest.fixture(scope="session")
def short_video_long_audio(video_dir):
    """2 s of indexed video (20 frames) with 4 s of audio: the container lasts 4 s."""
    return make_video(video_dir / "long_audio.mp4", "-f", "lavfi",
                      "-i", f"color=c=black:s=64x48:r=10:d=2,geq=lum='16+{VIDEO_FRAME_STEP}*N':cb=128:cr=128",
                      "-f", "lavfi", "-i", "sine=duration=4", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                      "-qp", "0", "-c:a", "aac")


@pytest.fixture(scope="session")
def rotated_video(video_dir, timer_video):
    """The timer video tagged to be displayed rotated by 90 degrees (stored 160x120, shown 120x160)."""
    return make_video(video_dir / "rotated.mp4", "-display_rotation", "90", "-i", timer_video, "-c", "copy")


@pytest.fixture(scope="session")
def webm_without_duration(video_dir):
    """A 3 s VP9 WebM written to a pipe, as MediaRecorder does: no duration in the header."""
    import subprocess

    path = video_dir / "live.webm"
    with open(path, "wb") as out:
        subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-f", "lavfi", "-i",
                        "testsrc=size=64x48:rate=10:duration=3", "-c:v", "libvpx-vp9", "-deadline", "realtime",
                        "-f", "webm", "pipe:1"], stdout=out, check=True)
    return str(path)


@pytest.fixture(scope="session")
def growing_video(video_dir):
    """3 s of MJPEG in Matroska whose first 2 s are 32x32 frames and whose last second is 400x400:
    the header (and ffmpeg's dump) say 32x32."""
    parts = []
    for name, size, seconds in (("small", "32x32", 2), ("big", "400x400", 1)):
        raw = make_video(video_dir / f"{name}.mjpeg", "-f", "lavfi", "-i",
                         f"testsrc=duration={seconds}:size={size}:rate=5", "-c:v", "mjpeg", "-f", "mjpeg")
        parts.append(make_video(video_dir / f"{name}.mkv", "-framerate", "5", "-f", "mjpeg", "-i", raw, "-c", "copy"))
    listing = video_dir / "grow.txt"
    listing.write_text("".join(f"file '{part}'\n" for part in parts))
    return make_video(video_dir / "grow.mkv", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy")


@pytest.fixture(scope="session")
def lying_duration_video(video_dir):
    """A 2 s video whose title tag writes a second Duration line, of 10,000 s, into ffmpeg's dump."""
    title = "x\n  Duration: 02:46:40.00, start: 0.000000, bitrate: 1 kb/s"
    return make_video(video_dir / "lying.mkv", "-f", "lavfi", "-i", "testsrc=duration=2:size=64x48:rate=10",
                      "-metadata", f"title={title}", "-c:v", "mjpeg")


@pytest.fixture(scope="session")
def audio_only(video_dir):
    return make_video(video_dir / "audio.m4a", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac")


@pytest.fixture(scope="session")
def not_videos(video_dir, timer_video):
    """Files that are not videos: {name: path}."""
    png = video_dir / "image.png"
    Image.new("RGB", (16, 16), (200, 30, 30)).save(png)
    noise = video_dir / "noise.bin"
    noise.write_bytes(np.random.default_rng(5).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    empty = video_dir / "empty.mp4"
    empty.write_bytes(b"")
    truncated = video_dir / "truncated.mp4"  # the moov atom (the index) is at the end: cut off
    with open(timer_video, "rb") as f:
        truncated.write_bytes(f.read(4000))
    playlist = video_dir / "remote.m3u8"  # would make ffmpeg fetch a URL if it were let
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://127.0.0.1:9/segment.ts\n#EXT-X-ENDLIST\n")
    return {"png": str(png), "noise": str(noise), "empty": str(empty), "truncated": str(truncated),
            "playlist": str(playlist)}


# ------------------------------------------------------------------ animations

ANIMATION_SIZE = (32, 24)
ANIMATION_DURATIONS = [80, 120, 160, 200, 240]


def animation_frames(size=ANIMATION_SIZE, count=len(ANIMATION_DURATIONS)):
    """RGBA frames: a red square moving right over a fixed blue bar and a yellow corner, transparent
    elsewhere; few colours, so a GIF holds them exactly."""
    frames = []
    for i in range(count):
        im = Image.new("RGBA", size, (0, 0, 0, 0))
        im.paste((0, 0, 255, 255), (2, size[1] - 6, size[0] - 2, size[1] - 2))
        im.paste((255, 255, 0, 255), (0, 0, 4, 4))
        im.paste((255, 0, 0, 255), (4 + 4 * i, 6, 12 + 4 * i, 14))
        frames.append(im)
    return frames


def encode_animation(fmt, frames=None, durations=ANIMATION_DURATIONS, **options):
    """Bytes of an animation of ``frames`` written by Pillow (GIF with disposal 2, lossless WebP)."""
    frames = frames or animation_frames()
    out = io.BytesIO()
    if fmt == "GIF":
        options.setdefault("disposal", 2)
    else:
        options.setdefault("lossless", True)
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=durations, **options)
    return out.getvalue()


def frames_of(data):
    """Every frame of an image as RGBA numpy arrays (composed as a browser shows them), and their durations."""
    im = Image.open(io.BytesIO(data))
    arrays, durations = [], []
    for index in range(getattr(im, "n_frames", 1)):
        im.seek(index)
        arrays.append(np.asarray(im.convert("RGBA")))
        durations.append(im.info.get("duration", 0))
    return arrays, durations


@pytest.fixture
def animated_gif():
    """Bytes of a 5-frame 32x24 GIF with transparency, playing 3 more times."""
    return encode_animation("GIF", loop=3)


@pytest.fixture
def animated_webp():
    """Bytes of the same animation as a lossless WebP, looping for ever."""
    return encode_animation("WEBP", loop=0)
