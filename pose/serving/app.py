"""The pose server's web application (FastAPI on uvicorn) and how to run it.

Routes (the OpenAPI schema at ``/openapi.json``; no ``/docs`` page, which would load its
scripts from a CDN):

- ``POST /v1/pose``: an image as the raw body (``Content-Type: image/...`` or
  ``application/octet-stream``) or as a multipart upload (the first file part; form fields
  as the query parameters). Query: ``boxes`` (JSON ``[[x, y, w, h(, score)], ...]``, image
  pixels; default: the server's box source), ``ignore_exif=1`` (the stored pixels, not the
  photo turned upright by its EXIF orientation), ``overlay=1`` (the drawn PNG instead of
  JSON). JSON: ``image`` (size as displayed), ``people`` (``box``, ``box_score``,
  ``score``, ``keypoints`` ``[[x, y, score], ...]`` in image pixels), ``keypoint_names``,
  ``skeleton``, ``box_source``, ``dropped_boxes``, ``timing_ms``.
- ``GET /v1/model``: model file, input size, runtime, precision, keypoints, skeleton,
  colours, detector, limits. ``GET /healthz``: queue and open streams.
- ``WS /v1/stream``: webcam frames (binary: 8-byte little-endian float64 capture time in
  ms, then a JPEG); each answered with JSON people carrying ``track_id`` (one tracker per
  connection, One-Euro smoothing; freed when the connection closes).
- ``GET /``: the page (``pose/serving/static``).

Limits: a body over ``max_bytes`` is refused with 413 (by its ``Content-Length`` before it
is read, else while reading); bytes that are no image, malformed boxes or parameters get
400 with ``{"error": "..."}`` naming the problem; a full work queue gets 503 with
``Retry-After`` before the body is read; a request not done within ``timeout`` seconds
gets 503 with ``Retry-After``. Nothing a client sends is used as a file path.
"""

import asyncio
import contextlib
import json
import logging
import os
import threading
import time

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from pose.errors import UserError
from pose.serving.service import FRAME_HEADER, QueueFull, RequestError, flag, parse_boxes

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
QUERY_PARAMETERS = ("boxes", "ignore_exif", "overlay")

log = logging.getLogger(__name__)

POSE_REQUEST_BODY = {
    "required": True,
    "content": {
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["image"],
            "properties": {
                "image": {"type": "string", "format": "binary"},
                "boxes": {"type": "string", "description": "as the query parameter"},
                "ignore_exif": {"type": "string", "description": "as the query parameter"}}}},
    },
}
POSE_PARAMETERS = [
    {"name": "boxes", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "person boxes, JSON [[x, y, w, h(, score)], ...] in image pixels; "
                    "default: the server's box source (detector or whole image)"},
    {"name": "ignore_exif", "in": "query", "required": False,
     "schema": {"type": "string", "enum": ["0", "1", "true", "false"]},
     "description": "1: use the stored pixels, not the photo turned upright by its EXIF "
                    "orientation"},
    {"name": "overlay", "in": "query", "required": False,
     "schema": {"type": "string", "enum": ["0", "1", "true", "false"]},
     "description": "1: answer with the drawn overlay as image/png instead of JSON"},
]
POSE_RESPONSES = {
    "200": {"description": "the people found (JSON), or the overlay (image/png)",
            "content": {"application/json": {}, "image/png": {}}},
    "400": {"description": "not an image, malformed boxes or parameters: {\"error\": ...}"},
    "413": {"description": "the body is larger than the server's limit"},
    "503": {"description": "busy (the work queue is full) or over the time limit; "
                           "Retry-After says when to come back"},
}


def error(status, message, retry_after=None):
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def read_body(request, limit):
    """The request body, at most ``limit`` bytes (413 ``RequestError`` beyond, by the
    declared ``Content-Length`` before anything is read)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError(f"Content-Length {declared[:40]!r} is not a number") from None
        if size > limit:
            raise RequestError(f"the request body is {size:,} bytes, over this server's "
                               f"limit of {limit:,} bytes", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the request body is over this server's limit of "
                               f"{limit:,} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_upload(request, body, limit):
    """``(image bytes, name, form fields)`` of a request whose body was read: a multipart
    upload (its first file part), else the body itself."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        replay = Request(request.scope, receive)
        try:
            form = await replay.form(max_files=1, max_fields=10, max_part_size=limit)
        except Exception as exc:  # noqa: BLE001 (Starlette's multipart errors vary by version)
            detail = getattr(exc, "detail", None) or str(exc)
            raise RequestError(f"malformed multipart upload: {detail}") from None
        try:
            files = [v for v in form.values() if hasattr(v, "read")]
            if not files:
                raise RequestError("the multipart upload holds no file part (send the image "
                                   "as a file field, e.g. image=@photo.jpg)")
            data = await files[0].read()
            # the client's file name only names the upload in messages; never opened
            name = os.path.basename(str(files[0].filename or "upload"))[:100] or "upload"
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
        finally:
            await form.close()
        return data, name, fields
    # Any other body is the image's bytes (curl --data-binary sends them as
    # application/x-www-form-urlencoded); decoding tells an image from anything else.
    return body, "upload", {}


def create_app(service, access_log=None):
    """The FastAPI application serving ``service`` (``pose.serving.service.PoseService``).

    Args:
        service: the ``PoseService``.
        access_log: path of a JSON-lines file that gets one line per HTTP request (time,
            method, path, status, milliseconds); None: none. Default None.
    """
    app = FastAPI(title="psa-pose server", version="1",
                  description="Top-down human pose estimation (HRNet + PSA) over HTTP.",
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.service = service
    if access_log is not None:
        app.add_middleware(AccessLog, path=access_log)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", summary="liveness, queue and open webcam streams")
    async def healthz():
        return service.health()

    @app.get("/v1/model", summary="the model, its runtime and keypoints, the box source")
    async def model():
        return service.model_info()

    @app.post("/v1/pose", summary="the people in an image",
              openapi_extra={"requestBody": POSE_REQUEST_BODY, "parameters": POSE_PARAMETERS,
                             "responses": POSE_RESPONSES})
    async def pose(request: Request):
        start = time.perf_counter()
        try:
            unknown = sorted(set(request.query_params) - set(QUERY_PARAMETERS))
            if unknown:
                raise RequestError(f"unknown query parameter {unknown[0]!r}; known: "
                                   f"{', '.join(QUERY_PARAMETERS)}")
            ticket = service.work.reserve()
        except QueueFull as exc:
            return error(503, str(exc), exc.retry_after)
        except RequestError as exc:
            return error(exc.status, str(exc))
        try:
            body = await read_body(request, service.max_bytes)
            data, name, fields = await parse_upload(request, body, service.max_bytes)
            del body
            if not len(data):
                raise RequestError("the request holds no image (an empty body)")
            params = dict(request.query_params)
            for key, value in fields.items():
                if key not in QUERY_PARAMETERS:
                    raise RequestError(f"unknown form field {key!r}; known: image, boxes, "
                                       "ignore_exif")
                if key in params:
                    raise RequestError(f"{key} is given both in the query and the form")
                params[key] = value
            boxes = scores = None
            if params.get("boxes") is not None:
                boxes, scores = parse_boxes(params["boxes"])
            upright = not flag(params.get("ignore_exif"), "ignore_exif")
            overlay = flag(params.get("overlay"), "overlay")
        except RequestError as exc:
            ticket.release()
            return error(exc.status, str(exc))
        except BaseException:
            ticket.release()
            raise

        def job():
            started = time.perf_counter()
            result = service.estimate(data, name, boxes, scores, exif_orientation=upright)
            return result, (service.overlay_png(result) if overlay else None), started

        submitted = time.perf_counter()
        future = service.work.submit(ticket, job)
        left = service.timeout - (submitted - start)
        try:
            result, png, started = await asyncio.wait_for(asyncio.wrap_future(future),
                                                          max(left, 0.0))
        except asyncio.TimeoutError:
            future.cancel()
            return error(503, f"the request took longer than this server's time limit of "
                              f"{service.timeout:g} s", service.work.retry_after)
        except UserError as exc:  # the image cannot be decoded, etc.
            return error(getattr(exc, "status", 400), str(exc))
        if png is not None:
            return Response(png, media_type="image/png")
        return JSONResponse(service.answer(result, 1e3 * (time.perf_counter() - start),
                                           queue_ms=1e3 * (started - submitted)))

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket):
        await websocket.accept()
        session = service.open_stream()
        try:
            await websocket.send_json({"stream": session.stream_id, **service.drawing()})
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is None:
                    await websocket.send_json({"error": "send frames as binary messages: an "
                                                        f"{FRAME_HEADER}-byte capture time "
                                                        "and a JPEG"})
                    continue
                try:
                    future = service.work.run(session.process, data)
                except QueueFull as exc:
                    await websocket.send_json({"error": str(exc), "busy": True,
                                               "retry_after": exc.retry_after})
                    continue
                try:
                    answer = await asyncio.wait_for(asyncio.wrap_future(future),
                                                    service.timeout)
                except asyncio.TimeoutError:
                    future.cancel()
                    answer = {"error": f"the frame took longer than the time limit of "
                                       f"{service.timeout:g} s", "busy": True,
                              "retry_after": service.work.retry_after}
                except UserError as exc:
                    answer = {"error": str(exc)}
                await websocket.send_json(answer)
        except (WebSocketDisconnect, OSError):  # OSError: uvicorn's ClientDisconnected,
            pass                                # the tab closed while its frame ran
        finally:
            session.close()

    return app


class AccessLog:
    """ASGI middleware: one JSON line per HTTP request in ``path`` (appended)."""

    def __init__(self, app, path):
        self.app = app
        self.file = open(path, "a", encoding="utf-8", buffering=1)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = [None]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.file.write(json.dumps({
                "time": round(time.time(), 3), "method": scope.get("method"),
                "path": scope.get("path"), "status": status[0],
                "ms": round(1e3 * (time.perf_counter() - start), 2)}) + "\n")


def _uvicorn_server(app, host, port, max_bytes, on_started=None):
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that Ctrl-C / SIGTERM end ``run`` normally (uvicorn
        raises the signal again after its graceful shutdown, which would make a tool's
        ordinary stop a failure), and ``on_started(url)`` is called once it listens."""

        stopped_by = ()

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                yield
                captured = getattr(self, "_captured_signals", [])
                self.stopped_by = tuple(captured)
                captured.clear()

        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started and on_started is not None:
                shown = f"[{host}]" if ":" in host else host
                on_started(f"http://{shown}:{bound_port(self)}/")

    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            access_log=False, ws_max_size=max_bytes + FRAME_HEADER,
                            timeout_keep_alive=5, lifespan="off")
    return Server(config)


def bound_port(server):
    """The port a started uvicorn server listens on (the one picked for port 0)."""
    for listener in server.servers:
        for sock in listener.sockets:
            return sock.getsockname()[1]
    return None


def check_address(host, port):
    """``UserError`` naming the problem unless a server can listen on ``host``:``port``
    (bound and released here, as uvicorn binds it: ``SO_REUSEADDR``), so that a port in
    use is one clear line instead of uvicorn's log and exit."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UserError(f"--host {host!r} is not an address of this machine "
                        f"({getattr(exc, 'strerror', None) or exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(app, host="127.0.0.1", port=8000, max_bytes=20 << 20, on_started=None):
    """Run ``app`` on uvicorn until Ctrl-C or SIGTERM (a normal end); ``on_started(url)``
    once it listens. Returns the signals that stopped it. A port that cannot be bound
    is an ``OSError`` (uvicorn logs it and exits; here it is raised)."""
    check_address(host, port)
    server = _uvicorn_server(app, host, port, max_bytes, on_started)
    try:
        server.run()
    except SystemExit:  # uvicorn's answer to a port it cannot bind
        raise UserError(f"cannot listen on {host}:{port} (in use, or not an address of "
                      "this machine)") from None
    if not server.started:
        raise UserError(f"cannot listen on {host}:{port} (in use, or not an address of "
                      "this machine)")
    return server.stopped_by


class ServerThread:
    """``app`` served by uvicorn in a thread on a free loopback port (tests, benchmarks).

    Example:
        >>> with ServerThread(create_app(service)) as server:
        ...     httpx.get(server.url + "healthz")
    """

    def __init__(self, app, host="127.0.0.1", port=0, max_bytes=20 << 20):
        self.server = _uvicorn_server(app, host, port, max_bytes)
        self.host = host
        self.thread = threading.Thread(target=self.server.run, name="pose-server",
                                       daemon=True)
        self.url = None

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the pose server did not start")
            time.sleep(0.01)
        self.url = f"http://{self.host}:{bound_port(self.server)}/"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)
