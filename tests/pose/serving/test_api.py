"""The pose server's HTTP API and webcam WebSocket with the tiny model: the same numbers as
tools/infer.py's library path, EXIF, overlays, the schema, bad input, the bounded queue and
time limit, per-connection tracking."""

import json
import shutil
import struct
import threading
import time

import cv2
import httpx
import numpy as np
import pytest

from datasets.images import decode_image_rgb
from pose.apis.boxes import DetectionBoxes, WholeImageBoxes
from pose.apis.inputs import collect_inputs
from pose.apis.runner import run_inference
from pose.apis.smoothing import OneEuroParams
from pose.apis.tracking import PoseTracker, TrackingParams
from pose.serving.service import QueueFull, WorkQueue
from tests.pose.serving.clips import jpeg_frames
from tests.pose.serving.conftest import MAX_BYTES, QUEUE

SAMPLE = "000000000785.jpg"


def _exif_jpeg(jpeg, orientation):
    """``jpeg`` with an EXIF APP1 segment holding only the orientation tag."""
    tiff = (b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
            + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0))
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@pytest.fixture(scope="module")
def photos(tmp_path_factory, coco_sample_dir):
    """The sample photos: a COCO image, the same stored sideways with EXIF orientation 6,
    a PNG (lossless overlays) and a multi-person image with its detector boxes."""
    folder = tmp_path_factory.mktemp("photos")
    images = coco_sample_dir / "images"
    shutil.copy(images / SAMPLE, folder / SAMPLE)
    stored = cv2.imread(str(images / SAMPLE))[::2, ::2]
    (folder / "sideways.jpg").write_bytes(_exif_jpeg(cv2.imencode(".jpg", stored)[1].tobytes(),
                                                     6))
    cv2.imwrite(str(folder / "small.png"), stored[40:200, 60:260])
    shutil.copy(images / "000000196141.jpg", folder / "000000196141.jpg")
    return folder


def _infer(estimator, path, out, source, exif_orientation=True):
    """tools/infer.py's library path on one image: its predictions.json records."""
    report = run_inference(estimator, collect_inputs([path]), out, source, verbose=0,
                           exif_orientation=exif_orientation)
    with open(report.predictions_file) as f:
        return json.load(f), report


def _assert_same_people(answer, records):
    assert len(answer["people"]) == len(records) > 0
    for person, record in zip(answer["people"], records):
        assert [v for kp in person["keypoints"] for v in kp] == record["keypoints"]
        for key in ("box", "box_score", "score"):
            assert person[key] == record[key], key


def _post(server, data, params=None, **kwargs):
    return httpx.post(server.url + "v1/pose", content=data, params=params, timeout=60,
                      headers={"Content-Type": "image/jpeg"}, **kwargs)


# ------------------------------------------------------------------ same numbers as infer


def test_the_same_keypoints_as_infer_whole_image_and_given_boxes(server, service, photos,
                                                                 tmp_path):
    records, _ = _infer(service.estimator, photos / SAMPLE, tmp_path / "whole",
                        WholeImageBoxes())
    answer = _post(server, (photos / SAMPLE).read_bytes()).json()
    _assert_same_people(answer, records)
    assert answer["image"] == {"width": 640, "height": 425, "exif_orientation": "applied"}
    assert answer["keypoint_names"][0] == "nose" and len(answer["keypoint_names"]) == 17
    assert [5, 6] in answer["skeleton"] and answer["box_source"] == "whole image"
    timing = answer["timing_ms"]
    assert set(timing) == {"queue", "decode", "pose", "total"}
    assert 0 <= timing["queue"] and timing["decode"] + timing["pose"] <= timing["total"]

    # several people: infer --boxes DET.json against the same boxes given with the request
    # (one reaches past the image: both clip it)
    name = "000000196141.jpg"
    detections = [{"image_id": 196141, "category_id": 1, "bbox": box, "score": score}
                  for box, score in [([30.5, 40.25, 120, 200], 0.9),
                                     ([300, 100, 500, 400], 0.75), ([10, 12, 60, 90], 0.4)]]
    det_file = tmp_path / "det.json"
    det_file.write_text(json.dumps(detections))
    records, _ = _infer(service.estimator, photos / name, tmp_path / "boxes",
                        DetectionBoxes(det_file))
    boxes = json.dumps([d["bbox"] + [d["score"]] for d in detections])
    answer = _post(server, (photos / name).read_bytes(), {"boxes": boxes}).json()
    assert answer["box_source"] == "request"
    _assert_same_people(answer, records)
    assert any(p["box"] != d["bbox"] for p, d in zip(answer["people"], detections))  # clipped
    # a multipart upload with the boxes as a form field: the same answer
    upload = httpx.post(server.url + "v1/pose", files={"image": (name, (photos / name)
                                                                 .read_bytes(), "image/jpeg")},
                        data={"boxes": boxes}, timeout=60).json()
    assert upload["people"] == answer["people"]


@pytest.mark.parametrize("ignore_exif", [False, True])
def test_photos_are_upright_by_exif_unless_ignore_exif(server, service, photos, tmp_path,
                                                       ignore_exif):
    """A photo stored sideways with orientation 6: upright (size as displayed) like
    tools/infer.py, or as stored with ignore_exif=1 like tools/infer.py --ignore-exif."""
    records, _ = _infer(service.estimator, photos / "sideways.jpg", tmp_path,
                        WholeImageBoxes(), exif_orientation=not ignore_exif)
    params = {"ignore_exif": "1"} if ignore_exif else None
    answer = _post(server, (photos / "sideways.jpg").read_bytes(), params).json()
    _assert_same_people(answer, records)
    size = (answer["image"]["width"], answer["image"]["height"])
    assert size == ((320, 213) if ignore_exif else (213, 320))
    assert answer["image"]["exif_orientation"] == ("ignored" if ignore_exif else "applied")


def test_the_overlay_is_infers_overlay(server, service, photos, tmp_path):
    _, report = _infer(service.estimator, photos / "small.png", tmp_path, WholeImageBoxes())
    response = _post(server, (photos / "small.png").read_bytes(), {"overlay": "1"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    served = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(served, cv2.imread(report.overlays[0]))


def test_model_health_and_schema(server, service):
    model = httpx.get(server.url + "v1/model").json()
    assert model["model_file"] == "tiny.keras"
    assert model["input_size"] == list(service.estimator.codec.input_size)
    assert model["runtime"] == "keras" and model["precision"] == "float32"
    assert model["keypoints"][:3] == ["nose", "left_eye", "right_eye"]
    assert model["detector"] == "whole image"
    assert model["limits"] == {"max_bytes": MAX_BYTES, "queue": QUEUE, "timeout_s": 30.0}
    health = httpx.get(server.url + "healthz").json()
    assert health["status"] == "ok" and health["queue"]["capacity"] == QUEUE
    schema = httpx.get(server.url + "openapi.json").json()
    body = schema["paths"]["/v1/pose"]["post"]["requestBody"]["content"]
    assert {"image/jpeg", "multipart/form-data"} <= set(body)
    assert {"/v1/model", "/healthz"} <= set(schema["paths"])
    assert httpx.get(server.url + "docs").status_code == 404  # its page would load a CDN
    page = httpx.get(server.url)
    assert page.status_code == 200 and "/static/app.js" in page.text
    for asset in ("static/app.js", "static/style.css"):
        assert httpx.get(server.url + asset).status_code == 200
    assert "http" not in httpx.get(server.url + "static/app.js").text.replace(
        "https:", "")  # nothing fetched from elsewhere


# ------------------------------------------------------------------ bad input


def test_bad_requests_get_a_clear_error_and_the_server_keeps_answering(server, photos):
    good = (photos / SAMPLE).read_bytes()
    expected = _post(server, good).json()["people"]
    garbage_name = str(photos / SAMPLE)  # an image on this disk: never opened by name
    cases = [
        ("not an image", b"this is not an image", {}, 400, "cannot decode"),
        ("empty body", b"", {}, 400, "no image"),
        ("truncated", good[:len(good) // 2], {}, 400, "truncated JPEG"),
        ("boxes not JSON", good, {"boxes": "[[1, 2"}, 400, "boxes: not JSON"),
        ("box of 3", good, {"boxes": "[[1, 2, 3]]"}, 400, "box 0"),
        ("box not finite", good, {"boxes": "[[1, 2, 3, 1e999]]"}, 400, "non-finite"),
        ("bad flag", good, {"overlay": "maybe"}, 400, "overlay must be"),
        ("a path parameter", good, {"path": "/etc/passwd"}, 400, "unknown query parameter"),
        ("too large", b"\xff\xd8" + b"\0" * MAX_BYTES, {}, 413, "limit"),
    ]
    for label, data, params, status, words in cases:
        response = _post(server, data, params)
        assert response.status_code == status, label
        assert words in response.json()["error"], (label, response.json())
        assert _post(server, good).json()["people"] == expected, f"after {label}"

    def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(3):
            yield b"\0" * (MAX_BYTES // 2 + 1)

    response = httpx.post(server.url + "v1/pose", content=chunks(), timeout=60)
    assert response.status_code == 413 and "limit" in response.json()["error"]
    # a multipart upload named after an image on this disk, holding no image: the name is
    # never opened
    response = httpx.post(server.url + "v1/pose", timeout=60,
                          files={"image": (garbage_name, b"not an image", "image/jpeg")})
    assert response.status_code == 400
    assert f"{SAMPLE}: OpenCV cannot decode" in response.json()["error"]
    no_file = (b"--B\r\nContent-Disposition: form-data; name=\"boxes\"\r\n\r\n[]\r\n"
               b"--B--\r\n")
    response = httpx.post(server.url + "v1/pose", content=no_file, timeout=60,
                          headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert response.status_code == 400 and "no file part" in response.json()["error"]
    assert _post(server, good).json()["people"] == expected


def test_a_full_queue_gets_503_with_retry_after_and_a_slow_request_its_time_limit(
        server, service, photos):
    good = (photos / SAMPLE).read_bytes()
    release = threading.Event()
    blockers = [service.work.run(release.wait) for _ in range(QUEUE)]  # the queue is full
    try:
        response = _post(server, good)
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "busy" in response.json()["error"]
        release.set()
        for blocker in blockers:
            blocker.result(timeout=10)
        release.clear()
        blockers = [service.work.run(release.wait)]  # the worker is busy, one slot taken
        skipped = service.work.skipped
        service.timeout = 0.3
        start = time.perf_counter()
        response = _post(server, good)
        assert response.status_code == 503 and "time limit of 0.3 s" in response.json()["error"]
        assert time.perf_counter() - start < 5
    finally:
        service.timeout = 30.0
        release.set()
    blockers[0].result(timeout=10)
    assert _post(server, good).status_code == 200
    assert service.work.skipped == skipped + 1  # the given-up request was never run
    assert service.work.admitted == 0


def test_work_queue_bounds_what_it_holds():
    work = WorkQueue(2)
    release = threading.Event()
    running = work.run(release.wait)
    waiting = work.run(lambda: "done")
    with pytest.raises(QueueFull):
        work.reserve()
    assert work.rejected == 1
    waiting.cancel()  # given up while queued: skipped, its slot freed when reached
    ticket = None
    release.set()
    running.result(timeout=10)
    deadline = time.monotonic() + 10
    while work.admitted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert work.admitted == 0 and work.skipped == 1
    ticket = work.reserve()
    ticket.release()
    ticket.release()  # idempotent
    assert work.admitted == 0
    failing = work.run(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=10)
    assert work.run(lambda: 7).result(timeout=10) == 7


# ------------------------------------------------------------------ webcam stream


def _message(capture_ms, jpeg):
    return struct.pack("<d", capture_ms) + jpeg


def _open_streams(server):
    return httpx.get(server.url + "healthz").json()["open_streams"]


def _wait_for_streams(server, count, seconds=10):
    deadline = time.monotonic() + seconds
    while _open_streams(server) != count and time.monotonic() < deadline:
        time.sleep(0.02)
    return _open_streams(server)


def test_stream_tracks_and_smooths_per_connection_like_a_reference_tracker(server, service):
    """Each connection has its own tracker (ids from 0) with One-Euro smoothing on the
    frames' capture times; the answers equal PoseTracker run on /v1/pose's people."""
    from websockets.sync.client import connect

    frames = jpeg_frames(6)
    times = [1000.0 + 40.0 * i for i in range(len(frames))]
    params = TrackingParams(max_age=1000, smooth=OneEuroParams())
    reference = PoseTracker(service.meta.sigmas_array, 1000.0, params)
    expected = []
    for t, jpeg in zip(times, frames):
        image = decode_image_rgb(jpeg)
        people = service.estimator.predict_image(image, [[0, 0, 320, 240]], [1.0])
        expected.append(service.people_json(reference.update(people, int(t - times[0]))))
    assert any(e[0]["keypoints"] != service.people_json(service.estimator.predict_image(
        decode_image_rgb(j), [[0, 0, 320, 240]], [1.0]))[0]["keypoints"]
        for e, j in zip(expected[1:], frames[1:]))  # the smoothing changes something
    url = server.url.replace("http", "ws") + "v1/stream"
    with connect(url) as first, connect(url) as second:
        assert json.loads(first.recv())["threshold"] == service.threshold  # the greeting
        json.loads(second.recv())
        assert _open_streams(server) == 2
        for t, jpeg, people in zip(times, frames, expected):
            first.send(_message(t, jpeg))
            answer = json.loads(first.recv(timeout=60))
            assert answer["people"] == people
            assert [p["track_id"] for p in answer["people"]] == [0]
        # bad frames: an error answer each, then the stream goes on
        for bad, words in [("text", "binary"), (b"1234", "capture time"),
                           (_message(0.0, b"garbage"), "cannot decode"),
                           (_message(float("nan"), frames[0]), "finite")]:
            second.send(bad)
            assert words in json.loads(second.recv(timeout=60))["error"]
        second.send(_message(times[0], frames[0]))
        answer = json.loads(second.recv(timeout=60))
        assert answer["people"] == expected[0]  # its own tracker: a first frame, id 0
    assert _wait_for_streams(server, 0) == 0  # closed: the connections' state is freed


def test_the_server_imports_no_tensorflow(repo_root):
    """The server's modules (and the tool's) load without TensorFlow or Keras, so that a
    .tflite/.onnx model is served on LiteRT/ONNX Runtime alone."""
    import subprocess
    import sys

    code = ("import sys, pose.serving.app, pose.serving.service, tools.serve; "
            "print([m for m in ('tensorflow', 'keras') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_port_in_use_or_a_host_of_no_machine_is_one_clear_error():
    import socket

    from pose.errors import UserError
    from pose.serving.app import check_address

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}: "):
            check_address("127.0.0.1", port)
    check_address("127.0.0.1", port)  # free again
    with pytest.raises(UserError, match="'nosuch.invalid' is not an address"):
        check_address("nosuch.invalid", 8000)


def test_the_serving_tests_are_one_xdist_group(request):
    """``make test``'s ``--dist loadgroup`` keeps this package on one worker (its served
    model is built once) only if the group reaches the scheduler as the node id's
    ``@serving`` suffix: pytest 9.2 ignores the suffix pytest-xdist 3.8 writes."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run under pytest-xdist's --dist loadgroup")
    assert request.node.nodeid.endswith("@serving"), request.node.nodeid
