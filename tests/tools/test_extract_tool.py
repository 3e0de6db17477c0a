"""tools/extract.py (issue 25): batch pose extraction on Ray Data against tools/infer.py.

A tiny pose model as an ONNX file (made without TensorFlow) and a planted ONNX detector,
generated photos, a broken photo, a video and an input list with a missing file. Ray runs
as clusters that the tests start themselves (``ray start --block`` in a process group of
their own, stopped through that group in a finalizer; unique temp dirs and ports, 100 MB
object stores, no dashboard), and once as the tool's own local Ray.
"""

import json
import os
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from pose.errors import run_tool
from tests.pose.apis.detector_files import onnx_detector

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
STORE = "100000000"
PHOTOS = 6


def _tool(name):
    return runpy.run_path(str(ROOT / "tools" / name), run_name="tool")["main"]


def tiny_pose_onnx(path, input_size, keypoints, seed=3):
    """A pose model as an ONNX file, made without TensorFlow (building and exporting the
    tiny HRNet costs this module 10-25 s; what is tested here is the pipeline around the
    model, not the export, which tests/pose/apis/test_export.py covers): NHWC crops →
    a 4×4 stride-4 convolution with random weights → NHWC heatmaps at 1/4 of the input,
    as an exported HRNet takes and gives them."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w, h = input_size
    kernel = np.random.default_rng(seed).normal(0, 1, (keypoints, 3, 4, 4)).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "kernel"], ["maps"], strides=[4, 4]),
             helper.make_node("Transpose", ["maps"], ["heatmaps"], perm=[0, 2, 3, 1])]
    graph = helper.make_graph(
        nodes, "tiny_pose",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", h, w, 3])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT,
                                       ["batch", h // 4, w // 4, keypoints])],
        [numpy_helper.from_array(kernel, "kernel")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_hrnet):
    """Photos (COCO-style names), a broken photo, a 12-frame video, a list naming two
    photos, a missing file and the video, a tiny pose model's .onnx and a planted
    detector."""
    from pose.config import Config, ModelConfig, TestConfig, config_path_for, save_config

    folder = tmp_path_factory.mktemp("extract")
    config = Config(model=ModelConfig(psa_placement="branch", **tiny_hrnet),
                    test=TestConfig(batch_size=4))
    weights = tiny_pose_onnx(folder / "tiny.onnx", config.model.input_size,
                             config.model.num_keypoints)
    save_config(config, config_path_for(weights))
    rng = np.random.default_rng(0)
    photos = folder / "photos"
    photos.mkdir()
    for i in range(1, PHOTOS + 1):
        image = cv2.GaussianBlur(rng.integers(0, 255, (90 + 7 * i, 120, 3), np.uint8), (9, 9), 3)
        cv2.imwrite(str(photos / f"{i:012d}.jpg"), image)
    (photos / "broken.jpg").write_bytes(b"not an image")
    clips = folder / "clips"
    clips.mkdir()
    writer = cv2.VideoWriter(str(clips / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10,
                             (96, 64))
    for _ in range(12):
        writer.write(cv2.GaussianBlur(rng.integers(0, 255, (64, 96, 3), np.uint8), (9, 9), 3))
    writer.release()
    (folder / "corpus.txt").write_text(
        "# two photos again, a missing one and the video\nphotos/000000000001.jpg\n\n"
        "photos/000000000002.jpg\nphotos/gone.jpg\nclips/clip.mp4\n")
    dets = [[100.0, 90.0, 300.0, 520.0, 0.9], [260.0, 60.0, 520.0, 600.0, 0.8]]
    onnx_detector(folder / "det.onnx", {"dets": np.array([dets], np.float32),
                                        "labels": np.array([[0, 0]], np.int64)},
                  input_shape=(1, 3, 640, 640), input_name="input")
    return folder


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """Ray nodes on loopback, each a ``ray start --block`` in its own process group."""

    def __init__(self):
        self.temp = tempfile.mkdtemp(prefix="rx", dir="/tmp")  # short: socket paths
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes = []
        self.env = dict(os.environ, RAY_AUTH_MODE="disabled",
                        RAY_health_check_period_ms="500",
                        RAY_health_check_failure_threshold="4",
                        RAY_health_check_initial_delay_ms="500")
        self.env.pop("RAY_ADDRESS", None)

    def start(self, head, cpus=1):
        where = (["--head", "--port", str(self.port), "--temp-dir", self.temp,
                  "--include-dashboard=false"] if head else ["--address", self.address])
        where += ["--node-ip-address", "127.0.0.1"]  # loopback only
        node = subprocess.Popen(
            [RAY, "start", *where, "--num-cpus", str(cpus), "--object-store-memory", STORE,
             "--block", "--disable-usage-stats"], env=self.env, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.nodes.append(node)
        for line in node.stdout:  # "Ray runtime started." once the node is up
            if "Ray runtime started" in line:
                return node
        raise AssertionError(f"ray start failed: exit {node.wait()}")

    def raylet_of(self, node):
        """The pid of ``node``'s raylet (a process of its group)."""
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"raylet/raylet" in cmd and os.getpgid(int(pid)) == node.pid:
                    return int(pid)
            except OSError:
                continue
        raise AssertionError("no raylet found")

    def stop(self):
        for node in reversed(self.nodes):
            for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
                try:
                    os.killpg(node.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    node.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            try:  # what the group still holds (workers that outlived ray start)
                os.killpg(node.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def _ray_environment():
    """The test clusters run without Ray's token authentication (loopback only); the
    drivers of this process must match them."""
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.pop("RAY_ADDRESS", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def head():
    cluster = Cluster()
    try:
        cluster.start(head=True, cpus=2)
        yield cluster
    finally:
        cluster.stop()


def _people(out):
    """{(file name, frame or None): sorted [(17, 2) keypoints rounded to 1e-3]} of an
    extraction."""
    table = pads.dataset(out / "poses").to_table()
    found = {}
    for row in table.to_pylist():
        key = (os.path.basename(row["source"]), row["frame"])
        found.setdefault(key, []).append(
            np.round(np.stack([row["keypoints_x"], row["keypoints_y"]], 1), 3))
    return {k: sorted(v, key=lambda a: a.tobytes()) for k, v in found.items()}


def _infer_people(data, out, *options):
    """The same dict from tools/infer.py on the photos and the video."""
    code = run_tool(_tool("infer.py"), [str(data / "photos"), str(data / "clips" / "clip.mp4"),
                                        "--weights", str(data / "tiny.onnx"), "--out",
                                        str(out), "--quiet", "--threads", "1", *options])
    assert code == 0
    found = {}
    for p in json.loads((out / "predictions.json").read_text()):
        found.setdefault((p["file_name"], None), []).append(
            np.round(np.asarray(p["keypoints"]).reshape(-1, 3)[:, :2], 3))
    for line in (out / "clip.jsonl").read_text().splitlines():
        frame = json.loads(line)
        for p in frame["people"]:
            found.setdefault(("clip.mp4", frame["frame"]), []).append(
                np.round(np.asarray(p["keypoints"]).reshape(-1, 3)[:, :2], 3))
    return {k: sorted(v, key=lambda a: a.tobytes()) for k, v in found.items()}


def _same(found, reference, listed_twice=()):
    """Every image and frame has exactly the reference's people (once; the photos that the
    list names again, twice)."""
    assert set(found) == set(reference)
    for key, people in reference.items():
        copies = 2 if key[0] in listed_twice else 1
        want = sorted(people * copies, key=lambda a: a.tobytes())
        assert len(found[key]) == len(want), key
        for a, b in zip(found[key], want):
            np.testing.assert_allclose(a, b, atol=1.5e-3, err_msg=str(key))


def _extract(data, out, *options, address=None):
    args = [str(data / "photos"), "--list", str(data / "corpus.txt"), "--weights",
            str(data / "tiny.onnx"), "--out", str(out), "--quiet", *map(str, options)]
    if address:
        args += ["--address", address]
    return run_tool(_tool("extract.py"), args)


DETECTOR_RUN = ("--detector", "det.onnx", "--shard-size", "3", "--frames-per-task", "5",
                "--images-per-task", "2")


def _detector_run(data):
    return [str(data / v) if v == "det.onnx" else v for v in DETECTOR_RUN]


@pytest.fixture(scope="module")
def detector_run(data, head, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    code = _extract(data, out, *_detector_run(data), "--coco-results", out.parent / "coco.json",
                    address=head.address)
    assert code == 0
    return out


def test_keypoints_are_infers_and_the_outputs_are_complete(data, detector_run, tmp_path,
                                                           capsys):
    out = detector_run
    reference = _infer_people(data, tmp_path / "infer", "--detector", str(data / "det.onnx"))
    # the photos, the two listed again, and every frame of the video spread over 3 ranges
    _same(_people(out), reference, listed_twice=("000000000001.jpg", "000000000002.jpg"))
    inputs = (out / "inputs.txt").read_text().splitlines()
    assert len(inputs) == PHOTOS + 1 + 4 and inputs[-2:] == [
        str(data / "photos" / "gone.jpg"), str(data / "clips" / "clip.mp4")]
    errors = pq.read_table(out / "errors.parquet").to_pylist()
    assert [(e["input"], os.path.basename(e["source"]), e["frame_start"]) for e in errors] == [
        (PHOTOS, "broken.jpg", None), (PHOTOS + 3, "gone.jpg", None)]
    assert "cannot decode" in errors[0]["reason"] and "No such file" in errors[1]["reason"]
    shards = sorted(p.name for p in (out / "poses").iterdir())
    assert shards == [f"part-{i:06d}.parquet" for i in range(4)]  # 11 inputs, 3 per shard
    schema = pq.read_schema(out / "poses" / shards[0])
    assert json.loads(schema.metadata[b"keypoint_names"])[:2] == ["nose", "left_eye"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"images": PHOTOS + 2, "frames": 12, "errors": 2,
                                  "people": sum(map(len, _people(out).values())),
                                  "dropped_boxes": 0}
    assert manifest["identity"]["model"]["weights_digest"].startswith("sha256:")
    assert manifest["packages"]["ray"] and manifest["complete"] is True
    assert not (out / "tasks.bin").exists()  # the run's task plan: gone with the run
    # the COCO results are infer.py's predictions.json for the same photos
    coco = json.loads((out.parent / "coco.json").read_text())
    predictions = json.loads((tmp_path / "infer" / "predictions.json").read_text())
    mine = {(c["image_id"], tuple(c["box"])): c["keypoints"] for c in coco}
    for p in predictions:
        np.testing.assert_allclose(mine[p["image_id"], tuple(p["box"])], p["keypoints"],
                                   atol=1.5e-3)
    assert len(coco) == len(predictions) + 2 * 2  # the listed photos' people again


def test_rerun_keeps_the_shards_and_other_flags_are_refused(data, detector_run, head, capsys):
    out = detector_run
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "poses").iterdir()}
    assert _extract(data, out, *_detector_run(data), address=head.address) == 0
    assert "0 written now, 4 kept from an earlier run" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (out / "poses").iterdir()} == stamps
    for extra, difference in [
            (["--no-flip"], "model.flip: null then, false now"),
            (["--detector-threshold", "0.5"], "boxes.threshold: 0.3 then, 0.5 now"),
            (["--shard-size", "4"], "shard_size: 3 then, 4 now")]:
        options = [*_detector_run(data), *extra]
        if extra[0] == "--shard-size":
            options = [o for o in options if o != "3"]
            options.remove("--shard-size")
        assert _extract(data, out, *options, address=head.address) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {out} was made by another extraction ({difference}")
    # other inputs: the first differing input is named
    args = [str(data / "photos" / "000000000002.jpg"), "--list", str(data / "corpus.txt"),
            "--weights", str(data / "tiny.onnx"), "--out", str(out), *_detector_run(data)]
    assert run_tool(_tool("extract.py"), args) == 2
    err = capsys.readouterr().err
    assert "input #1: " + str(data / "photos" / "000000000001.jpg") + " then, " in err
    assert {p.name: p.stat().st_mtime_ns for p in (out / "poses").iterdir()} == stamps


def test_a_killed_driver_resumes_on_a_local_ray_exactly_once(data, head, tmp_path, capsys,
                                                             monkeypatch):
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "tools" / "extract.py"), str(data / "photos"),
               "--list", str(data / "corpus.txt"), "--weights", str(data / "tiny.onnx"),
               "--out", str(out), "--shard-size", "1", "--images-per-task", "1",
               "--frames-per-task", "3", "--address", head.address, "--quiet"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list((out / "poses").glob("part-*.parquet")):
            assert driver.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        driver.kill()
    finally:
        driver.kill()
        driver.wait()
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "poses").glob("part-*.parquet")}
    assert 0 < len(kept) < PHOTOS + 5, "the driver was killed mid-job"
    # the same command, resumed on a local Ray of the tool's own
    monkeypatch.setenv("RAY_TMPDIR", tempfile.mkdtemp(prefix="rl", dir="/tmp"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code = run_tool(_tool("extract.py"), command[2:-3] + ["--quiet", "--num-cpus", "1",
                                                          "--object-store-memory", STORE])
    shutil.rmtree(os.environ["RAY_TMPDIR"], ignore_errors=True)
    assert code == 0
    assert "kept from an earlier run" in capsys.readouterr().out
    assert {n: (out / "poses" / n).stat().st_mtime_ns for n in kept} == kept
    reference = _infer_people(data, tmp_path / "infer")
    _same(_people(out), reference, listed_twice=("000000000001.jpg", "000000000002.jpg"))
    assert len(list((out / "poses").glob("part-*.parquet"))) == PHOTOS + 5


def test_a_killed_worker_node_costs_only_retried_tasks(data, head, tmp_path):
    # a second node joins the module's head (its start is the only one this test pays)
    worker = head.start(head=False)
    out = tmp_path / "out"
    job = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "extract.py"), str(data / "photos"),
         "--list", str(data / "corpus.txt"), "--weights", str(data / "tiny.onnx"),
         "--out", str(out), "--shard-size", "1", "--images-per-task", "1",
         "--frames-per-task", "2", "--address", head.address, "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=head.env)
    try:
        deadline = time.monotonic() + 60
        while not list((out / "poses").glob("part-*.parquet")):
            assert job.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(head.raylet_of(worker), signal.SIGKILL)
        stdout, stderr = job.communicate(timeout=120)
        assert job.returncode == 0, stderr[-3000:]
    finally:
        job.kill()
        job.wait()
    reference = _infer_people(data, tmp_path / "infer")
    _same(_people(out), reference, listed_twice=("000000000001.jpg", "000000000002.jpg"))


def test_bad_input_is_one_line_and_nothing_is_written(data, tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "nowhere.txt").write_text("a/missing.jpg\nb/missing.jpg\n")
    with socket.socket() as s:  # a port nobody answers at
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    base = ["--weights", str(data / "tiny.onnx"), "--out", str(out)]
    cases = [
        ([str(data / "photos"), "--weights", str(tmp_path / "gone.onnx"), "--out", str(out)],
         "model not found"),
        ([str(data / "photos"), *base, "--address", dead], f"no Ray cluster answers at {dead}"),
        (["--list", str(tmp_path / "nowhere.txt"), *base],
         "none of its 2 path(s) exists (the first: " + str(tmp_path / "a" / "missing.jpg")),
        (["--list", str(data / "corpus.txt"), "--strict", *base],
         "1 listed input(s) do not exist (the first: " + str(data / "photos" / "gone.jpg")),
    ]
    for args, message in cases:
        start = time.monotonic()
        assert run_tool(_tool("extract.py"), args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
        assert time.monotonic() - start < 30
        assert not out.exists()


class _Handed(BaseException):
    """The tool handed its work to ``run_extraction``: the call is captured."""


@pytest.fixture
def handed(data, tmp_path, monkeypatch):
    """``handed(*options)``: what tools/extract.py passes on (the ``Settings``, corpus,
    connection and run arguments) for those options, without Ray."""
    import pose.batch.extraction as extraction

    calls = {}

    def connect(address, num_cpus, object_store_memory):
        calls["connect"] = dict(address=address, num_cpus=num_cpus,
                                object_store_memory=object_store_memory)
        return False

    def run_extraction(settings, corpus, out, **kwargs):
        calls.update(settings=settings, corpus=corpus, out=out, **kwargs)
        raise _Handed()

    monkeypatch.setattr(extraction, "connect", connect)
    monkeypatch.setattr(extraction, "run_extraction", run_extraction)
    monkeypatch.setattr("ray.shutdown", lambda: None)
    (tmp_path / "boxes.json").write_text(json.dumps(
        [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.9}]))
    (tmp_path / "sub").mkdir()
    shutil.copy(data / "photos" / "000000000001.jpg", tmp_path / "sub" / "deep.jpg")
    shutil.copy(data / "photos" / "000000000001.jpg", tmp_path / "top.jpg")
    shutil.copy(data / "tiny.yaml", tmp_path / "other.yaml")
    main = _tool("extract.py")

    def run(*options, inputs=(str(data / "photos"),)):
        calls.clear()
        out = tmp_path / f"out{abs(hash(options))}"
        try:
            code = run_tool(main, [*inputs, "--weights", str(data / "tiny.onnx"),
                                   "--out", str(out), *map(str, options)])
        except _Handed:
            return calls
        raise AssertionError(f"{options}: exit {code} before run_extraction")

    return run


def _names(corpus):
    return [os.path.basename(p) for p in corpus.iter_paths()]


_BASELINES = {}


@pytest.mark.parametrize("options, get, value", [
    (["--threads", 3], lambda c: (c["settings"].threads, c["settings"].pose["threads"]),
     (3, 3)),
    (["--actors", 4], lambda c: c["settings"].actors, 4),
    (["--runtime", "onnx"], lambda c: c["settings"].pose["runtime"], "onnx"),
    (["--input-size", 96, 128], lambda c: c["settings"].pose["input_size"], [96, 128]),
    (["--no-flip"], lambda c: c["settings"].pose["flip"], False),
    (["--batch-size", 7], lambda c: c["settings"].pose["batch_size"], 7),
    (["--batching", "padded"], lambda c: c["settings"].pose["batching"], "padded"),
    (["--set", "test.flip_test=false"], lambda c: c["settings"].pose["overrides"],
     ["test.flip_test=false"]),
    (["--ignore-exif"], lambda c: c["settings"].exif_orientation, False),
    (["--shard-size", 5], lambda c: c["settings"].shard_size, 5),
    (["--frames-per-task", 9], lambda c: c["settings"].frames_per_task, 9),
    (["--images-per-task", 3], lambda c: c["settings"].images_per_task, 3),
    (["--address", "127.0.0.1:1"], lambda c: c["connect"]["address"], "127.0.0.1:1"),
    (["--num-cpus", 2], lambda c: c["connect"]["num_cpus"], 2),
    (["--object-store-memory", 90000000], lambda c: c["connect"]["object_store_memory"],
     90000000),
    (["--quiet"], lambda c: c["progress"], None),
    (["--detector-format", "end2end"], lambda c: c["settings"].boxes["layout"], "end2end"),
    (["--detector-preset", "yolox"], lambda c: c["settings"].boxes["preset"], "yolox"),
    (["--detector-size", 640, 640], lambda c: c["settings"].boxes["size"], [640, 640]),
    (["--detector-mean", 1, 2, 3], lambda c: c["settings"].boxes["mean"], [1.0, 2.0, 3.0]),
    (["--detector-std", 4, 5, 6], lambda c: c["settings"].boxes["std"], [4.0, 5.0, 6.0]),
    (["--detector-threshold", 0.6], lambda c: c["settings"].boxes["threshold"], 0.6),
    (["--person-class", 0], lambda c: c["settings"].boxes["person_class"], 0),
    (["--detector-nms-iou", 0.7], lambda c: c["settings"].boxes["nms_iou"], 0.7),
    (["--detector-nms-classes", "all"], lambda c: c["settings"].boxes["nms_classes"], "all"),
    (["--max-people", 3], lambda c: c["settings"].boxes["max_people"], 3),
])
def test_each_option_reaches_what_it_configures(handed, data, options, get, value):
    # the detector options with the planted detector; --person-class 0 against class 1
    base = (["--detector", str(data / "det.onnx")]
            if options[0].startswith(("--detector-", "--person", "--max-people")) else [])
    if options[0] == "--person-class":
        assert get(handed(*base, "--person-class", 1)) == 1
    with_option = get(handed(*base, *options))
    if tuple(base) not in _BASELINES:  # the calls without the option, once per base
        _BASELINES[tuple(base)] = dict(handed(*base))
    without = get(_BASELINES[tuple(base)]) if options[0] != "--person-class" else 1
    assert with_option == value != without, (options, without)


def test_the_inputs_boxes_config_and_outputs_reach_their_calls(handed, data, tmp_path):
    assert _names(handed()["corpus"])[:2] == ["000000000001.jpg", "000000000002.jpg"]
    listed = handed("--list", data / "corpus.txt")["corpus"]
    assert _names(listed)[-4:] == ["000000000001.jpg", "000000000002.jpg", "gone.jpg",
                                   "clip.mp4"] and listed.listed == 4
    assert "deep.jpg" in _names(handed("--recursive", inputs=[str(tmp_path)])["corpus"])
    assert _names(handed(inputs=[str(tmp_path)])["corpus"]) == ["top.jpg"]
    strict = handed("--strict", inputs=[str(data / "photos" / "000000000001.jpg")])
    assert strict["corpus"].missing == 0
    boxes = handed("--boxes", tmp_path / "boxes.json")["settings"]
    assert boxes.boxes == {"kind": "boxes", "file": str(tmp_path / "boxes.json")}
    assert boxes.digests["boxes"].startswith("sha256:")
    # --whole-image says what the default is: one box, the whole image
    assert handed("--whole-image")["settings"].boxes == {"kind": "whole"}
    detector = handed("--detector", data / "det.onnx")["settings"].boxes
    assert detector["kind"] == "detector" and detector["file"] == str(data / "det.onnx")
    config = handed("--config", tmp_path / "other.yaml")["settings"]
    assert config.pose["config"] == str(tmp_path / "other.yaml")
    assert handed()["settings"].pose["config"] is None
    weights = handed()["settings"]
    assert weights.pose["weights"] == str(data / "tiny.onnx")
    shutil.copy(data / "tiny.onnx", tmp_path / "other.onnx")
    assert handed("--weights", tmp_path / "other.onnx")["settings"].pose["weights"] == str(
        tmp_path / "other.onnx")
    assert str(handed("--out", tmp_path / "mine")["out"]) == str(tmp_path / "mine")
    assert weights.digests["weights"] == "sha256:" + __import__("hashlib").sha256(
        (data / "tiny.onnx").read_bytes()).hexdigest()
    run = handed("--coco-results", tmp_path / "c.json")
    assert run["coco_results"] == str(tmp_path / "c.json") and run["out"].endswith(
        str(abs(hash(("--coco-results", tmp_path / "c.json")))))
    assert handed()["coco_results"] is None and handed()["progress"] is not None
    # --images-per-task's default grows with the list: 40,001 inputs are 157 shards of
    # 256, each cut into 26 tasks of up to 10 images (4,082 tasks, not 5,024 of 8)
    long_list = tmp_path / "long.txt"
    long_list.write_text(f"{data / 'photos' / '000000000001.jpg'}\n"
                         + "".join(f"gone/{i}.jpg\n" for i in range(40_000)))
    assert handed("--list", long_list)["settings"].images_per_task == 10
    assert handed()["settings"].images_per_task == 8
