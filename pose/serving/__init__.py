"""The pose server: ``pose.apis`` (estimator, runtimes, detector, tracker) behind an HTTP API,
a WebSocket for live webcam frames and a static web page (``tools/serve.py``).

- ``pose.serving.service``: the model and box source loaded once, the bounded work queue,
  request handling that needs no web framework (decode, boxes, estimate, JSON), and the
  per-connection tracking state of a webcam stream.
- ``pose.serving.app``: the FastAPI application (routes, limits, errors, static files) and
  ``serve`` (uvicorn).
- ``pose/serving/static/``: the page at ``/`` (HTML, JS, CSS; nothing from the internet).
"""
