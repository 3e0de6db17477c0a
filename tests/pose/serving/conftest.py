"""The pose server under test: a tiny random-weight checkpoint loaded as tools/serve.py loads
it, served by uvicorn in a thread on a free loopback port, once for the package."""

import pytest

# Small limits, so that the bad-input and load tests cost little: 2 MiB bodies, 4 requests
# queued or running.
MAX_BYTES = 2 << 20
QUEUE = 4


@pytest.fixture(scope="package")
def checkpoint(tmp_path_factory, tiny_hrnet, randomized):
    """A tiny HRNet ``.keras`` checkpoint with random weights and its config beside it."""
    from pose.config import Config, ModelConfig, TestConfig
    from pose.engine.checkpoint import build_model, save_model

    config = Config(model=ModelConfig(psa_placement="branch", **tiny_hrnet),
                    test=TestConfig(batch_size=8))
    model = randomized(build_model(config.model))
    path = tmp_path_factory.mktemp("serving") / "tiny.keras"
    save_model(model, path, config)
    return path


@pytest.fixture(scope="package")
def service(checkpoint):
    """The ``PoseService`` of tools/serve.py on the checkpoint (whole-image boxes)."""
    from pose.apis.boxes import WholeImageBoxes
    from pose.apis.estimator import PoseEstimator, load_network
    from pose.config import resolve_config
    from pose.serving.service import PoseService

    # (optimize_graph stays on: turning Grappler off is process-wide, and other tests
    # share this process)
    model, saved = load_network(checkpoint, trace_ahead=True)
    estimator = PoseEstimator.from_config(model, resolve_config(None, saved))
    service = PoseService(estimator, WholeImageBoxes(), weights=checkpoint, queue_size=QUEUE,
                          max_bytes=MAX_BYTES, timeout=30.0)
    service.warm_up()
    return service


@pytest.fixture(scope="package")
def server(service):
    """The server (``.url``, ``.server``) of ``service``, stopped after the package."""
    from pose.serving.app import ServerThread, create_app

    with ServerThread(create_app(service), max_bytes=service.max_bytes) as running:
        yield running
