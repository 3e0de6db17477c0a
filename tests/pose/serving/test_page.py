"""The server's page in a real browser (Debian's Chromium, headless, driven by Playwright):
a photo's skeleton drawn at the returned keypoints, and the webcam mode on Chromium's fake
camera playing a generated clip, with stable track ids, fps and latency shown, and the
connection's state freed when the tab closes."""

import io
import math
import re
import time

import httpx
import numpy as np
from PIL import Image

from tests.conftest import CHROMIUM_ARGS, chromium_or_skip
from tests.pose.serving.clips import frames_bgr, write_y4m

PHOTO = "000000000785.jpg"


def _pixels(page, selector):
    """The page's screenshot as an (H, W, 3) uint8 RGB array, and the (x, y) of the
    element's top left corner in it."""
    box = page.locator(selector).bounding_box()
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB"))
    return shot, (box["x"], box["y"] + page.evaluate("window.scrollY"))


def _check_joints(shot, people, model, size):
    """The screenshot's pixel under each drawn keypoint has its joint's side colour (or,
    where another joint's dot overlaps it, that joint's colour or halo). Returns how many
    were checked."""
    pixels, (left, top) = shot
    w, h = size
    radius = max(2, round(math.sqrt(w * h) / 250)) + 2  # app.js's dots
    colors = {side: tuple(rgb) for side, rgb in model["side_colors"].items()}
    drawn = []  # (x, y, colour) of every dot drawn
    for person in people:
        if person["box_score"] < model["box_threshold"]:
            continue
        for k, (x, y, score) in enumerate(person["keypoints"]):
            if None not in (x, y, score) and score > model["threshold"]:
                drawn.append((x, y, colors[model["keypoint_sides"][k]]))
    checked = 0
    for i, (x, y, color) in enumerate(drawn):
        if not (radius <= x < w - radius and radius <= y < h - radius):
            continue
        allowed = {color}
        for j, (ox, oy, other) in enumerate(drawn):
            if j != i and math.hypot(ox - x, oy - y) <= 2 * radius + 2:
                allowed |= {other, (0, 0, 0)}
        # the centre and four points well inside the dot's rim: a limb through the keypoint
        # (the same colour, 2 pixels wide, over a black halo) covers at most two of those
        for dx, dy in ((0, 0), (radius - 2, 0), (2 - radius, 0), (0, radius - 2),
                       (0, 2 - radius)):
            pixel = pixels[int(top + y + dy), int(left + x + dx)].astype(int)
            assert any(np.abs(pixel - c).max() <= 2 for c in allowed), (x, y, dx, dy, pixel,
                                                                          allowed)
        checked += 1
    return checked


def test_a_photo_gets_its_skeleton_drawn_at_the_returned_keypoints(chromium, server,
                                                                    coco_sample_dir):
    photo = coco_sample_dir / "images" / PHOTO
    api = httpx.post(server.url + "v1/pose", content=photo.read_bytes(), timeout=60).json()
    context = chromium.new_context(viewport={"width": 1200, "height": 1000})
    try:
        page = context.new_page()
        page.goto(server.url)
        page.set_input_files("#file", str(photo))
        page.wait_for_selector("body[data-photo=done]", timeout=60_000)
        shown = page.evaluate("window.poseDemo.photo")
        model = page.evaluate("window.poseDemo.model")
        assert shown["people"] == api["people"]
        assert re.search(r"1 person in \d+ ms \(640×425\)", page.inner_text("#photo-status"))
        shot = _pixels(page, "#photo-canvas")
        assert page.evaluate("document.getElementById('photo-canvas').clientWidth") == 640
        assert _check_joints(shot, shown["people"], model, (640, 425)) >= 3
        # the photo itself is under the skeleton
        pixels, (left, top) = shot
        drawn = pixels[round(top):round(top) + 425, round(left):round(left) + 640]
        original = np.asarray(Image.open(photo).convert("RGB")).astype(int)
        assert np.mean(np.abs(drawn.astype(int) - original) <= 12) > 0.8
    finally:
        context.close()


def test_the_webcam_streams_live_with_stable_ids_and_frees_its_state(chromium, server,
                                                                     tmp_path):
    """Chromium's fake camera plays a generated clip of a person walking; the page sends
    its frames over the WebSocket and draws the answers: one person, id #0 in every frame,
    frames per second and latency shown; closing the tab closes the stream."""
    chromium_or_skip()
    clip = write_y4m(tmp_path / "clip.y4m", frames_bgr(30, (320, 240), speed=1.0))
    browser = chromium.browser_type.launch(
        executable_path=chromium_or_skip(), headless=True,
        args=CHROMIUM_ARGS + ["--use-fake-device-for-media-stream",
                              "--use-fake-ui-for-media-stream",
                              f"--use-file-for-fake-video-capture={clip}"])
    try:
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.goto(server.url)
        page.click("#webcam-tab")
        page.select_option("#size", "320x240")
        page.click("#start")
        page.wait_for_function("window.poseDemo.stream.frames >= 12", timeout=60_000)
        page.click("#stop")
        stream = page.evaluate("window.poseDemo.stream")
        model = page.evaluate("window.poseDemo.model")
        assert stream["size"] == [320, 240] and not stream["errors"]
        assert stream["ids"] == [[0]] * stream["frames"]  # one person, one id throughout
        status = page.inner_text("#webcam-status")
        fps, latency = re.search(r"fps ([\d.]+) · latency (\d+) ms · 1 person \(ids #0\)",
                                 status).groups()
        assert float(fps) > 0 and int(latency) > 0 and stream["fps"] > 0
        shot = _pixels(page, "#webcam-canvas")
        assert _check_joints(shot, stream["people"], model, (320, 240)) >= 1
        page.close()
        deadline = time.monotonic() + 10
        while (httpx.get(server.url + "healthz").json()["open_streams"]
               and time.monotonic() < deadline):
            time.sleep(0.02)
        assert httpx.get(server.url + "healthz").json()["open_streams"] == 0
    finally:
        browser.close()
