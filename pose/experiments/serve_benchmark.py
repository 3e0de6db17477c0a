"""What serving costs: the pose server (``tools/serve.py`` in its own process, clients on
loopback) against calling the same runtime in-process, and webcam frames per second over
the WebSocket (``tools/benchmark.py serve``).

- API rows: ``clients`` threads each post one 640x480 JPEG with one generated person
  (whole-image box: one person per image) as fast as answers come, for ``seconds``;
  requests per second and p50 / p95 latency. The in-process rows do the same work without
  HTTP: the same number of threads hand ``PoseService.estimate`` (decode, box, pose,
  rescoring: what the server's worker runs) to the same single-worker ``WorkQueue``. The
  ratio HTTP / in-process is the cost of HTTP, JSON and the event loop, plus the model's
  run-to-run spread on a busy machine; the paired rows take that spread out: each
  request's latency at the client minus the server's own queue + decode + pose time.
- Webcam rows: one WebSocket client sends the frames of a generated clip as the page does
  (a frame, its answer, the next frame) at each size; frames per second and latency.

Both sides use the same model file, runtime and thread count; measured in one run, in
alternation (in-process, then HTTP, per client count), so the ratio holds on a busy
machine.
"""

import json
import os
import queue
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

import cv2
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

COLUMNS = [("label", "setting", "{}"), ("clients", "clients", "{}"),
           ("rps", "req/s", "{:.2f}"), ("p50_ms", "p50 (ms)", "{:.1f}"),
           ("p95_ms", "p95 (ms)", "{:.1f}"), ("ratio", "vs in-process", "{}"),
           ("requests", "requests", "{}")]


def person_frames(size, count, speed=2.0):
    """JPEG frames (bytes) of one generated person walking right over clutter."""
    from datasets.synthetic.clips import ClipPerson, render_clip

    w, h = size
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "clip.avi")
        render_clip(path, [ClipPerson((0.47 * w, 0.73 * h), (speed * w / 320, 0),
                                      0.62 * h)], count, size=size)
        cap = cv2.VideoCapture(path)
        frames = []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]
                          .tobytes())
        cap.release()
    return frames


def _summary(latencies, seconds, extra=None):
    ms = np.asarray(latencies) * 1e3
    return {"requests": len(ms), "rps": len(ms) / seconds if seconds > 0 else 0.0,
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
            "p95_ms": float(np.percentile(ms, 95)) if len(ms) else float("nan"),
            "seconds": seconds, **(extra or {})}


def _run_clients(clients, seconds, call):
    """``clients`` threads calling ``call()`` (returns a status) back to back for
    ``seconds``; latencies of the 200s and the count of each status."""
    latencies, statuses, lock = [], {}, threading.Lock()
    start = time.perf_counter()
    stop = start + seconds

    def loop():
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            status = call()
            t1 = time.perf_counter()
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(t1 - t0)

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _summary(latencies, time.perf_counter() - start,
                    {"statuses": {str(k): v for k, v in statuses.items()}})


def measure_in_process(service, jpeg, clients, seconds):
    """``clients`` threads handing ``service.estimate(jpeg)`` to its work queue."""
    def call():
        service.work.run(service.estimate, jpeg).result()
        return 200
    return _run_clients(clients, seconds, call)


def measure_http(url, jpeg, clients, seconds):
    """``clients`` threads posting ``jpeg`` to ``url``v1/pose (one connection each). Also
    the paired overhead of each answered request: its latency at the client minus the
    server's own time for it in the queue and the worker (``timing_ms``: queue, decode,
    pose): what HTTP, JSON and the event loop cost, free of the model's run-to-run spread
    and of the waiting that any single-worker service has."""
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per request
    local = threading.local()
    overheads, shares, lock = [], [], threading.Lock()

    def call():
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=120)
        t0 = time.perf_counter()
        response = local.client.post(url + "v1/pose", content=jpeg,
                                     headers={"Content-Type": "image/jpeg"})
        if response.status_code == 200:
            timing = response.json()["timing_ms"]
            total = 1e3 * (time.perf_counter() - t0)
            with lock:
                overheads.append(total - timing["queue"] - timing["decode"] - timing["pose"])
                shares.append(overheads[-1] / total)
        return response.status_code

    result = _run_clients(clients, seconds, call)
    if overheads:
        result["overhead_p50_ms"] = float(np.percentile(overheads, 50))
        result["overhead_p95_ms"] = float(np.percentile(overheads, 95))
        result["overhead_share_p50"] = float(np.percentile(shares, 50))
    return result


def measure_stream(url, frames, rounds=1):
    """The page's webcam loop over ``url``v1/stream: frames per second and latency."""
    from websockets.sync.client import connect

    latencies = []
    with connect(url.replace("http", "ws", 1) + "v1/stream", max_size=None) as ws:
        json.loads(ws.recv())  # the greeting
        ws.send(struct.pack("<d", 0.0) + frames[0])  # a first frame, not timed
        json.loads(ws.recv(timeout=300))
        start = time.perf_counter()
        for r in range(rounds):
            for i, jpeg in enumerate(frames):
                t0 = time.perf_counter()
                ws.send(struct.pack("<d", 1e3 * (t0 - start) + 1.0) + jpeg)
                answer = json.loads(ws.recv(timeout=300))
                latencies.append(time.perf_counter() - t0)
                if "error" in answer:
                    raise RuntimeError(f"the stream answered {answer['error']}")
        seconds = time.perf_counter() - start
    result = _summary(latencies, seconds)
    result["fps"] = result.pop("rps")
    return result


def start_server(weights, threads=None, queue_size=64, timeout=300):
    """``tools/serve.py`` on ``weights`` on a free loopback port in its own process;
    ``(process, url)`` once it serves."""
    command = [sys.executable, os.path.join(REPO, "tools", "serve.py"), "--weights",
               os.fspath(weights), "--port", "0", "--queue", str(queue_size),
               "--timeout", "600"]
    if threads:
        command += ["--threads", str(threads)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=REPO)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        if line.startswith("serving on "):
            return process, line.split()[2]
    process.kill()
    raise RuntimeError("tools/serve.py did not start:\n" + "".join(seen))


def stop_server(process):
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def benchmark_serving(weights, clients=(1, 4, 32), seconds=10.0, sizes=((320, 240),
                                                                        (640, 480)),
                      frames=40, threads=None):
    """The API rows (in-process and HTTP per client count) and the webcam rows; a report
    dict with ``rows`` for ``COLUMNS``."""
    from pose.apis.boxes import WholeImageBoxes
    from pose.apis.estimator import PoseEstimator, load_network, runtime_description
    from pose.config import resolve_config
    from pose.serving.service import PoseService

    model, saved = load_network(weights, threads=threads, optimize_graph=False,
                                trace_ahead=True)
    estimator = PoseEstimator.from_config(model, resolve_config(None, saved,
                                                                source=weights))
    service = PoseService(estimator, WholeImageBoxes(), weights=weights, threads=threads,
                          queue_size=1000)
    service.warm_up()
    jpeg = person_frames((640, 480), 1)[0]
    people = len(service.estimate(jpeg).people)
    process, url = start_server(weights, threads)
    rows, results = [], {"api": [], "webcam": []}
    try:
        for n in clients:
            local = measure_in_process(service, jpeg, n, seconds)
            served = measure_http(url, jpeg, n, seconds)
            results["api"].append({"clients": n, "in_process": local, "http": served})
            ratio = served["rps"] / local["rps"] if local["rps"] else float("nan")
            rows.append({"label": "in-process", "clients": n, **local, "ratio": "1"})
            rows.append({"label": "HTTP", "clients": n, **served,
                         "ratio": f"{ratio:.3f} req/s, {served['p50_ms'] / local['p50_ms']:.3f}"
                                  " p50"})
            if "overhead_p50_ms" in served:
                rows.append({"label": "HTTP overhead (paired)", "clients": n,
                             "rps": float("nan"), "p50_ms": served["overhead_p50_ms"],
                             "p95_ms": served["overhead_p95_ms"],
                             "ratio": f"{100 * served['overhead_share_p50']:.2f}% of latency",
                             "requests": served["requests"]})
        for w, h in sizes:
            clip = person_frames((w, h), frames)
            stream = measure_stream(url, clip)
            results["webcam"].append({"size": [w, h], **stream})
            rows.append({"label": f"webcam {w}x{h}", "clients": 1, "rps": stream["fps"],
                         "p50_ms": stream["p50_ms"], "p95_ms": stream["p95_ms"],
                         "ratio": "-", "requests": stream["requests"]})
    finally:
        stop_server(process)
    return {"weights": os.fspath(weights), "runtime": runtime_description(model, threads),
            "people_per_image": people, "flip_test": estimator.flip,
            "seconds_per_setting": seconds, "rows": rows, "results": results,
            "median_overhead_p50": statistics.median(
                r["http"]["p50_ms"] / r["in_process"]["p50_ms"] for r in results["api"])}
