"""Generated webcam frames: one synthetic person walking right over a cluttered background
(``datasets.synthetic.clips``), as JPEG messages or as a y4m file for Chromium's fake
camera."""

import tempfile

import cv2

from datasets.synthetic.clips import ClipPerson, render_clip


def frames_bgr(count, size=(320, 240), speed=2.0):
    """``count`` BGR frames of the person walking ``speed`` pixels per frame."""
    w, h = size
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/clip.avi"
        render_clip(path, [ClipPerson((0.47 * w, 0.73 * h), (speed, 0), 0.62 * h)], count,
                    size=size)
        cap = cv2.VideoCapture(path)
        frames = []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(bgr)
        cap.release()
    assert len(frames) == count
    return frames


def jpeg_frames(count, size=(320, 240)):
    return [cv2.imencode(".jpg", bgr)[1].tobytes() for bgr in frames_bgr(count, size)]


def write_y4m(path, frames, fps=15):
    """``frames`` (BGR, even sides) as a YUV4MPEG2 4:2:0 file (what
    ``--use-file-for-fake-video-capture`` plays, looping)."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for bgr in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes())  # Y, U, V planes
    return path
