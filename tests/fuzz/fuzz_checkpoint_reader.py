"""``make fuzz``: a longer fuzzing run of the PyTorch checkpoint reader, driven by Hypothesis.

Not collected by ``make test`` (the file name does not start with ``test_``) and not needed
by it: Hypothesis comes with the ``fuzz`` extra. Each example runs in the worker of
``tests/fuzz/checkpoint_fuzz.py`` (memory, CPU and wall limits); the outcome must be clean
(``refused``, ``error`` or ``loaded`` inside bounds). ``FUZZ_EXAMPLES`` sets the number of
examples of each test (default 1500); the counts by kind and outcome are printed at the end.

    python -m pytest -q -s tests/fuzz/fuzz_checkpoint_reader.py
"""

import collections
import os
import pickletools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import checkpoint_files
from tests.fuzz.checkpoint_fuzz import (
    CLEAN,
    FIXTURES,
    MUTATIONS,
    Runner,
    malicious_cases,
)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1500"))
COUNTS = collections.Counter()
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                HealthCheck.too_slow])


@pytest.fixture(scope="module")
def runner(official_hrnet_dir, tmp_path_factory):
    markers = tmp_path_factory.mktemp("markers")
    worker = Runner(official_hrnet_dir, markers)
    yield worker
    worker.close()
    print(f"\ncheckpoint reader fuzzing: {sum(COUNTS.values())} cases, "
          f"{worker.restarts} worker restarts")
    for (kind, outcome), n in sorted(COUNTS.items()):
        print(f"  {kind:<22} {outcome:<14} {n}")


def _check(runner, kind, case):
    outcome, detail = runner.run(case)
    COUNTS[(kind, outcome)] += 1
    assert outcome in CLEAN, f"{case}: {outcome}: {detail}"


def test_malicious_pickles(runner, tmp_path_factory):
    directory = tmp_path_factory.mktemp("evil")
    for case in malicious_cases(directory, runner.marker_dir):
        _check(runner, "malicious", case)


@FUZZ_SETTINGS
@given(fixture=st.sampled_from(FIXTURES), kind=st.sampled_from(MUTATIONS),
       seed=st.integers(0, 2 ** 32))
def test_seeded_corruptions_of_the_official_fixtures(runner, fixture, kind, seed):
    _check(runner, kind, {"fixture": fixture, "kind": kind, "seed": seed})


# Random opcode sequences: any opcode, followed by a few random argument bytes.
_OPCODES = [op.code.encode("latin-1") for op in pickletools.opcodes]
_STREAMS = st.lists(st.tuples(st.sampled_from(_OPCODES), st.binary(max_size=9)),
                    min_size=1, max_size=40)


@FUZZ_SETTINGS
@given(stream=_STREAMS, legacy=st.booleans())
def test_random_opcode_streams_inside_a_checkpoint(runner, tmp_path_factory, stream, legacy):
    w = checkpoint_files
    path = tmp_path_factory.getbasetemp() / "stream.pth"
    payload = b"".join(code + arg for code, arg in stream)
    w.write(path, {"x": w.Tensor("0", 0, (2,), (1,)), "y": w.Raw(payload)},
            {"0": np.zeros(2, np.float32)}, legacy=legacy)
    _check(runner, "opcode_stream", {"path": str(path)})
