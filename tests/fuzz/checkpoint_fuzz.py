"""Fuzzing the PyTorch checkpoint reader: seeded corruptions of the official fixtures and
hand-written malicious pickles, each loaded in a worker process under a memory and CPU
limit (``resource.setrlimit``), with a wall-clock limit per case.

A case's outcome is ``refused`` (``UnsafeCheckpointError`` naming the file), ``error``
(``CheckpointError`` naming the file) or ``loaded`` (every array inside its buffer and
readable); anything else is unclean: ``exception`` (another exception, or an error not
naming the file), ``out_of_bounds``, ``marker`` (a file the payload would create exists),
``crash`` (the worker died: a segfault, the memory or CPU limit) or ``hang``.

Used by ``tests/pose/models/test_checkpoint_fuzz.py`` (CI: a few hundred cases) and
``tests/fuzz/fuzz_checkpoint_reader.py`` (``make fuzz``: Hypothesis, thousands). A worker:
``python -m tests.fuzz.checkpoint_fuzz FIXTURE_DIR MARKER_DIR`` reads one case (JSON) per
line on stdin and answers one JSON line on stdout.
"""

import copyreg
import io
import json
import os
import pickletools
import random
import select
import subprocess
import sys
import tempfile
import zipfile

FIXTURES = ("pose_hrnet_tiny.pth", "pose_hrnet_tiny_legacy.pth")
# Mutations of a fixture; the pickle-level ones re-pack a zip with valid CRCs so that the
# edit reaches the unpickler instead of failing the archive's checksum.
MUTATIONS = ("flip", "truncate", "pickle_flip", "opcode", "int_edit", "length_edit",
             "tensor_offset", "storage_size", "zip_header")
CLEAN = ("refused", "error", "loaded")
MEMORY_LIMIT = 2 << 30  # bytes of address space of a worker (numpy's import takes ~0.5 GiB)
CPU_LIMIT_S = 600  # CPU seconds of one worker process (the wall limit per case is tighter)
CASE_TIMEOUT_S = 30  # wall seconds of one case on a shared, loaded machine
# Extension codes a worker registers (as a library could): EXT1, EXT2, EXT4.
EXTENSIONS = (("builtins", "eval", 240), ("os", "system", 0x1234),
              ("builtins", "open", 0x12345678))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_EDGE_INTS = (0, 1, 2, 255, 2 ** 15, 2 ** 16 - 1, 2 ** 20, 2 ** 31 - 1, 2 ** 32 - 1)


# --- mutations (run in the worker: deterministic in (fixture, kind, seed)) ---

class _Fixture:
    """A fixture's bytes, and where its object pickle lies."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        self.is_zip = self.data[:2] == b"PK"
        if self.is_zip:
            with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
                self.members = [(i.filename, archive.read(i)) for i in archive.infolist()]
            self.pickle_name = next(n for n, _ in self.members if n.endswith("/data.pkl"))
            pkl = dict(self.members)[self.pickle_name]
            self.pickle_start, self.pickle_end = 0, len(pkl)
        else:
            stream, start = io.BytesIO(self.data), 0
            for _ in range(4):  # magic, protocol, sys_info, the object
                start = stream.tell()
                for _ in pickletools.genops(stream):
                    pass
            self.pickle_start, self.pickle_end = start, stream.tell()
        self.ops = [(op, pos) for op, _, pos in pickletools.genops(self.pickle_bytes())]

    def pickle_bytes(self):
        if self.is_zip:
            return dict(self.members)[self.pickle_name]
        return self.data[self.pickle_start:self.pickle_end]

    def with_pickle(self, pkl):
        """The whole file with its object pickle replaced (a zip re-packed, valid CRCs)."""
        if not self.is_zip:
            return self.data[:self.pickle_start] + pkl + self.data[self.pickle_end:]
        return self.with_members({self.pickle_name: pkl})

    def with_members(self, replaced):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for name, content in self.members:
                archive.writestr(name, replaced.get(name, content))
        return out.getvalue()


def _set_field(data, pos, width, value):
    return data[:pos] + (value % (1 << 8 * width)).to_bytes(width, "little") + \
        data[pos + width:]


def mutate(fixture, kind, seed):
    """The fixture's bytes with one seeded corruption of ``kind`` (see ``MUTATIONS``)."""
    rng = random.Random(f"{kind}:{seed}")
    data = fixture.data
    if kind == "flip":
        data = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= rng.randint(1, 255)
        return bytes(data)
    if kind == "truncate":
        return data[:rng.randrange(len(data))]
    pkl = bytearray(fixture.pickle_bytes())
    if kind == "pickle_flip":
        for _ in range(rng.randint(1, 4)):
            pkl[rng.randrange(len(pkl))] ^= rng.randint(1, 255)
        return fixture.with_pickle(bytes(pkl))
    if kind == "opcode":
        _, pos = rng.choice(fixture.ops)
        pkl[pos] = ord(rng.choice(pickletools.opcodes).code[0])
        return fixture.with_pickle(bytes(pkl))
    if kind in ("int_edit", "length_edit", "tensor_offset"):
        widths = {"int_edit": {"BININT": 4, "BININT1": 1, "BININT2": 2, "LONG1": 1},
                  "length_edit": {"BINUNICODE": 4, "SHORT_BINUNICODE": 1, "BINPUT": 1,
                                  "LONG_BINPUT": 4, "BINGET": 1, "LONG_BINGET": 4,
                                  "SHORT_BINBYTES": 1, "BINBYTES": 4, "FRAME": 8,
                                  "BINUNICODE8": 8},
                  "tensor_offset": {"BININT": 4, "BININT1": 1, "BININT2": 2}}[kind]
        candidates = [(op, pos) for op, pos in fixture.ops if op.name in widths]
        if kind == "tensor_offset":  # the int right after a storage's persistent id
            names = [op.name for op, _ in fixture.ops]
            candidates = [fixture.ops[i + 1] for i, n in enumerate(names[:-1])
                          if n == "BINPERSID" and names[i + 1] in widths]
        op, pos = rng.choice(candidates)
        width = widths[op.name]
        value = rng.choice(_EDGE_INTS + (rng.getrandbits(8 * width), -1, -2 ** 31))
        return fixture.with_pickle(_set_field(bytes(pkl), pos + 1, width, value))
    if kind == "storage_size":  # a storage's bytes shorter or longer than declared
        if fixture.is_zip:
            name, content = rng.choice([m for m in fixture.members if "/data/" in m[0]])
            cut = content[:rng.randrange(len(content))] if rng.random() < 0.7 else \
                content + bytes(rng.randint(1, 64))
            return fixture.with_members({name: cut})
        pos = fixture.pickle_end + rng.randrange(len(data) - fixture.pickle_end - 8)
        return _set_field(data, pos, 8, rng.choice(_EDGE_INTS + (2 ** 33, 2 ** 63 - 1, -1)))
    if kind == "zip_header":
        if not fixture.is_zip:
            return _set_field(data, rng.randrange(fixture.pickle_start), 1, rng.getrandbits(8))
        signatures = (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07")
        records = [i for sig in signatures for i in _find_all(data, sig)]
        record = rng.choice(records)
        field = rng.randrange(4, 46)
        width = rng.choice((1, 2, 4))
        return _set_field(data, record + field, width,
                          rng.choice(_EDGE_INTS + (rng.getrandbits(8 * width),)))
    raise ValueError(f"unknown mutation {kind!r}")


def _find_all(data, needle):
    positions, start = [], data.find(needle)
    while start != -1 and len(positions) < 5000:
        positions.append(start)
        start = data.find(needle, start + 1)
    return positions


# --- the worker ---

def _arrays(obj, depth=0, seen=None):
    """Every array in a loaded object, each container visited once (a shared one too)."""
    seen = set() if seen is None else seen
    if depth > 200 or id(obj) in seen:
        return
    seen.add(id(obj))
    if hasattr(obj, "dtype") and hasattr(obj, "strides") and hasattr(obj, "base"):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _arrays(k, depth + 1, seen)
            yield from _arrays(v, depth + 1, seen)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            yield from _arrays(v, depth + 1, seen)


def _check_bounds(result):
    """None when every array lies inside the buffer it views and reads back, else why."""
    import numpy as np

    byte_bounds = getattr(np.lib, "array_utils", np).byte_bounds
    for array in _arrays(result):
        root = array
        while isinstance(root.base, np.ndarray):
            root = root.base
        low, high = byte_bounds(array)
        root_low, root_high = byte_bounds(root)
        if array.size and not (root_low <= low and high <= root_high):
            return f"array {array.shape} {array.strides} outside its buffer"
        array.tobytes()  # touches every element: a read outside memory would crash here
    return None


def _load_case(case, fixtures, scratch, fixture_dir, marker_dir):
    from pose.models.torch_checkpoint import (
        CheckpointError,
        UnsafeCheckpointError,
        load_torch_checkpoint,
    )

    path = case.get("path")
    if path is None:
        name = case["fixture"]
        if name not in fixtures:
            fixtures[name] = _Fixture(os.path.join(fixture_dir, name))
        data = fixtures[name].data if case["kind"] == "none" else \
            mutate(fixtures[name], case["kind"], case["seed"])
        path = os.path.join(scratch, f"case_{name}")
        with open(path, "wb") as f:
            f.write(data)
    try:
        result = load_torch_checkpoint(path)
    except UnsafeCheckpointError as e:
        outcome, detail = ("refused" if path in str(e) else "exception"), str(e)
    except CheckpointError as e:
        outcome, detail = ("error" if path in str(e) else "exception"), str(e)
    except BaseException as e:  # noqa: BLE001 - every other exception is the finding
        outcome, detail = "exception", f"{type(e).__name__}: {e}"
    else:
        problem = _check_bounds(result)
        outcome, detail = ("out_of_bounds", problem) if problem else ("loaded", "")
    if os.listdir(marker_dir):
        outcome, detail = "marker", f"created {sorted(os.listdir(marker_dir))}; {detail}"
    return outcome, detail[:300]


def worker_main(fixture_dir, marker_dir):
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.setrecursionlimit(3000)
    for module, name, code in EXTENSIONS:  # so that EXT1/2/4 reach find_class
        copyreg.add_extension(module, name, code)
    fixtures = {}
    with tempfile.TemporaryDirectory() as scratch:
        for line in sys.stdin:
            case = json.loads(line)
            outcome, detail = _load_case(case, fixtures, scratch, fixture_dir, marker_dir)
            sys.stdout.write(json.dumps({"outcome": outcome, "detail": detail}) + "\n")
            sys.stdout.flush()


# --- the parent side ---

class Runner:
    """A worker process fed one case at a time; restarted after a crash or a hang."""

    def __init__(self, fixture_dir, marker_dir):
        self.fixture_dir, self.marker_dir = str(fixture_dir), str(marker_dir)
        self.process = None
        self.restarts = 0

    def _start(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [REPO] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
            OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.checkpoint_fuzz", self.fixture_dir,
             self.marker_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, cwd=REPO, env=env, text=True, bufsize=1)

    def run(self, case):
        """``(outcome, detail)`` of one case (a dict: ``fixture``/``kind``/``seed`` or
        ``path``)."""
        if self.process is None or self.process.poll() is not None:
            self._start()
        try:
            self.process.stdin.write(json.dumps(case) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return self._lost("crash", "the worker died before reading the case")
        ready, _, _ = select.select([self.process.stdout], [], [], CASE_TIMEOUT_S)
        if not ready:
            return self._lost("hang", f"no answer in {CASE_TIMEOUT_S} s")
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            return self._lost("crash", f"the worker died (exit status {code})")
        answer = json.loads(line)
        for name in os.listdir(self.marker_dir):  # never leave a marker to the next case
            answer = {"outcome": "marker", "detail": f"created {name}; {answer['detail']}"}
            os.remove(os.path.join(self.marker_dir, name))
        return answer["outcome"], answer["detail"]

    def _lost(self, outcome, detail):
        self.close()
        self.restarts += 1
        return outcome, detail

    def close(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def malicious_cases(directory, marker_dir):
    """Hand-written hostile pickles, zip and legacy, through every pickle route (GLOBAL,
    STACK_GLOBAL, INST, OBJ, REDUCE, BUILD, NEWOBJ, NEWOBJ_EX, EXT1/2/4, persistent ids),
    each aiming to create a file in ``marker_dir``. Returns cases with ``expect``:
    ``refused`` or ``error`` (``clean``: any clean outcome)."""
    import numpy as np

    from tests import checkpoint_files as w

    os.makedirs(directory, exist_ok=True)
    marker = os.path.join(str(marker_dir), "pwned")
    s = w.str_op
    calls = {  # (module, name) → argument opcodes that would create the marker
        ("builtins", "eval"): [s(f"open({marker!r}, 'w')")],
        ("builtins", "exec"): [s(f"open({marker!r}, 'w')")],
        ("builtins", "open"): [s(marker), s("w")],
        ("os", "system"): [s(f"touch {marker}")],
        ("posix", "system"): [s(f"touch {marker}")],
        ("subprocess", "call"): [w.tuple_op([s("touch"), s(marker)])],
        ("__builtin__", "eval"): [s(f"open({marker!r}, 'w')")],
        ("pickle", "loads"): [s("x")],
        ("numpy", "load"): [s(marker)],
        ("numpy.core.multiarray", "_reconstruct"): [s("x")],
        ("torch._utils", "_rebuild_from_type_v2"): [s("x")],
        ("torch.serialization", "load"): [s(marker)],
        ("copyreg", "_reconstructor"): [s("x")],
        ("builtins", "getattr"): [s("x"), s("y")],
    }
    payloads = {}
    for (module, name), args in calls.items():
        payloads[f"GLOBAL {module}.{name}"] = (
            w.global_op(module, name) + w.tuple_op(args) + b"R", "refused")
        payloads[f"STACK_GLOBAL {module}.{name}"] = (
            w.stack_global_op(module, name) + w.tuple_op(args) + b"R", "refused")
        payloads[f"INST {module}.{name}"] = (
            b"(" + b"".join(args) + b"i" + f"{module}\n{name}\n".encode(), "refused")
        payloads[f"OBJ {module}.{name}"] = (
            b"(" + w.global_op(module, name) + b"".join(args) + b"o", "refused")
    open_args = w.tuple_op(calls[("builtins", "open")])
    payloads.update({
        "NEWOBJ": (w.global_op("builtins", "open") + open_args + b"\x81", "refused"),
        "NEWOBJ_EX": (w.global_op("builtins", "open") + open_args + b"}\x92", "refused"),
        "EXT1 eval": (b"\x82\xf0" + w.tuple_op(calls[("builtins", "eval")]) + b"R", "refused"),
        "EXT2 os.system": (b"\x83\x34\x12" + w.tuple_op(calls[("os", "system")]) + b"R",
                           "refused"),
        "EXT4 open": (b"\x84\x78\x56\x34\x12" + open_args + b"R", "refused"),
        "EXT1 unregistered": (b"\x82\xf1" + open_args + b"R", "error"),
        "PERSID text": (b"Pevil\n", "refused"),
        "BINPERSID module": (w.tuple_op([s("module"), s("os")]) + b"Q", "refused"),
        "BINPERSID storage of eval": (w.tuple_op([
            s("storage"), w.global_op("builtins", "eval"), s("0"), s("cpu"), w.int_op(1)])
            + b"Q", "refused"),
        "BINPERSID storage of a string type": (w.tuple_op([
            s("storage"), s("FloatStorage"), s("0"), s("cpu"), w.int_op(1)]) + b"Q", "error"),
        "REDUCE codecs rot13": (w.global_op("_codecs", "encode")
                                + w.tuple_op([s("x"), s("rot13")]) + b"R", "refused"),
        "REDUCE numpy object dtype": (w.global_op("numpy", "dtype")
                                      + w.tuple_op([s("O")]) + b"R", "refused"),
        "BUILD numpy dtype with fields": (
            w.global_op("numpy", "dtype") + w.tuple_op([s("f8")]) + b"R"
            + w.tuple_op([w.int_op(3), s("|"), b"N", w.tuple_op([s("a")]),
                          b"}" + s("a") + w.tuple_op([s("O"), w.int_op(0)]) + b"s",
                          w.int_op(8), w.int_op(1), w.int_op(63)]) + b"b", "refused"),
        "BUILD storage type": (w.global_op("torch", "FloatStorage") + b"}"
                               + s("dtype") + s("O") + b"sb", "refused"),
        "BUILD OrderedDict attributes": (w.global_op("collections", "OrderedDict") + b")R}"
                                         + s("__setstate__") + s("x") + b"sb", "clean"),
        "parameter of a string": (w.global_op("torch._utils", "_rebuild_parameter")
                                  + w.tuple_op([s("x"), b"\x89", b"N"]) + b"R", "error"),
        "tensor of a string storage": (w.global_op("torch._utils", "_rebuild_tensor_v2")
                                       + w.tuple_op([s("x"), w.int_op(0), b")", b")", b"\x89",
                                                     b"N"]) + b"R", "error"),
        # Structure: numbers that ask for more than the file holds.
        "memo index 2^32": (w.int_op(1) + b"r\xff\xff\xff\xff", "error"),
        "BINUNICODE8 of 2^63 bytes": (b"\x8d" + (2 ** 63).to_bytes(8, "little"), "error"),
        "BINBYTES8 of 2^62 bytes": (b"\x8e" + (2 ** 62).to_bytes(8, "little"), "error"),
        "FRAME of 2^40 bytes": (b"\x95" + (2 ** 40).to_bytes(8, "little") + b"N", "error"),
        "LONG4 of 2^31 bytes": (b"\x8b\xff\xff\xff\x7f", "error"),
        "100000 nested lists": (b"]" * 100_000 + b"a" * 99_999, "error"),
        "a list holding itself": (b"]\x94h\x00a", "error"),
        "60 levels of shared lists": (b"]\x940" + b"0".join(
            b"(h%sh%sl\x94" % (bytes([i]), bytes([i])) for i in range(60)), "clean"),
        "BUILD a storage's numel": (lambda legacy: w.tuple_op(
            [s("storage"), w.global_op("torch", "FloatStorage"), s("0"), s("cpu"), w.int_op(2)]
            + [b"N"] * legacy) + b"Q}" + s("numel") + w.int_op(2 ** 30) + b"sb", "refused"),
    })
    cases = []
    for legacy in (False, True):
        for label, (payload, expect) in payloads.items():
            path = os.path.join(str(directory), f"{len(cases)}.pth")
            if callable(payload):  # the storage id has a sixth field in the legacy format
                payload = payload(legacy)
            w.write(path, {"x": w.Tensor("0", 0, (2,), (1,)), "y": w.Raw(payload)},
                    {"0": np.zeros(2, np.float32)}, legacy=legacy)
            cases.append({"path": path, "label": f"{label} ({'legacy' if legacy else 'zip'})",
                          "expect": expect})
    return cases


def seeded_cases(per_kind, seed=0):
    """``per_kind`` cases of each mutation for each fixture, plus the clean fixtures."""
    cases = [{"fixture": f, "kind": "none", "seed": 0} for f in FIXTURES]
    for fixture in FIXTURES:
        for kind in MUTATIONS:
            cases += [{"fixture": fixture, "kind": kind, "seed": seed * 100_000 + i}
                      for i in range(per_kind)]
    return cases


def run_cases(cases, fixture_dir, marker_dir, workers=2):
    """Outcomes of ``cases`` (in order), split over ``workers`` worker processes."""
    import concurrent.futures

    def run_share(share):
        runner = Runner(fixture_dir, marker_dir)
        try:
            return [runner.run(case) for case in share]
        finally:
            runner.close()

    shares = [cases[i::workers] for i in range(workers)]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(run_share, shares))
    outcomes = [None] * len(cases)
    for i, share_results in enumerate(results):
        outcomes[i::workers] = share_results
    return outcomes


if __name__ == "__main__":
    worker_main(*sys.argv[1:3])
