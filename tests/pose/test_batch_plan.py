"""The extraction driver's bookkeeping (issue 25), without Ray: the input lists are read as
streams and the driver keeps per-shard state only, so that its memory does not grow with
the number of listed inputs; what a resumed run relies on stays exact."""

import hashlib
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pose.batch import plan, stages
from pose.batch.shards import ShardWriter
from pose.errors import UserError


@pytest.fixture
def listed(tmp_path):
    """A list of 1000 relative paths (none exists but the first) and the expected paths."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "0.jpg").write_bytes(b"x")
    names = [f"a/{i}.jpg" for i in range(1000)]
    (tmp_path / "list.txt").write_text("# a comment\n" + "\n".join(names) + "\n\n")
    return tmp_path / "list.txt", [str(tmp_path / n) for n in names]


def test_the_corpus_streams_its_lists_and_the_shards_come_from_the_inputs_file(listed,
                                                                               tmp_path):
    list_file, paths = listed
    corpus = plan.collect_corpus(lists=[list_file])
    assert corpus.inputs == [] and corpus.count == corpus.listed == 1000  # no path held
    assert list(corpus.iter_paths()) == paths
    want = hashlib.sha256("".join(p + "\n" for p in paths).encode()).hexdigest()
    assert corpus.digest() == want
    plan.write_inputs(corpus, tmp_path / "inputs.txt")
    assert (tmp_path / "inputs.txt").read_text().splitlines() == paths
    shards = list(plan.iter_shard_lines(tmp_path / "inputs.txt", 256, skip={1}))
    assert [(s, first, len(p)) for s, first, _, p in shards] == [(0, 0, 256), (2, 512, 256),
                                                                 (3, 768, 232)]
    text = (tmp_path / "inputs.txt").read_bytes()
    assert shards[1][3] == [(p + "\n").encode() for p in paths[512:768]]
    assert shards[1][2] == len("".join(p + "\n" for p in paths[:512]).encode())
    assert text[shards[2][2]:] == b"".join(shards[2][3]) and shards[2][3][-1] == (
        paths[-1] + "\n").encode()
    assert [s for s, *_ in plan.iter_shard_lines(tmp_path / "inputs.txt", 1000)] == [0]
    assert plan.first_input_difference(tmp_path / "inputs.txt", corpus) is None


def test_a_list_that_changed_since_it_was_read_is_refused(listed, tmp_path):
    list_file, paths = listed
    corpus = plan.collect_corpus(lists=[list_file])
    with open(list_file, "a") as f:
        f.write("a/late.jpg\n")
    with pytest.raises(UserError, match="changed while this run read them .1001 path"):
        plan.write_inputs(corpus, tmp_path / "inputs.txt")
    assert not (tmp_path / "inputs.txt").exists()
    assert plan.first_input_difference(list_file, corpus) is not None


def test_the_tasks_byte_ranges_give_exactly_each_shards_parts(tmp_path):
    # multi-byte, undecodable (surrogate-escaped), carriage-return and video names (a
    # video between two images of one task); a shard of videos only; a shard skipped
    # (written by an earlier run)
    names = ["ä.jpg", "v.mp4", "日本.png", "\udcff.jpg", "a\rb.jpg", "c.jpg", "w.MOV",
             "\udce9t\u00e9.jpeg", "d.jpg", "short.mp4", "long.avi", "e.jpg", "f.jpg",
             "g.jpg", "h.jpg", "j.webm", "k.mp4"]
    paths = [f"/data/{n}" for n in names]
    (tmp_path / "inputs.txt").write_bytes(b"".join(
        p.encode("utf-8", "surrogateescape") + b"\n" for p in paths))
    frames = {"v.mp4": 10, "w.MOV": 8, "short.mp4": 0, "long.avi": 13, "j.webm": 4,
              "k.mp4": 3}
    count = lambda path: frames[os.path.basename(path)]  # noqa: E731
    shard_size, per_task, per_range, skip = 5, 2, 4, {1}

    want = {}  # the reference: shard → [(input, range, path, video, start, stop)]
    for i, path in enumerate(paths):
        shard = i // shard_size
        if shard in skip:
            continue
        if not plan.is_video(path):
            want.setdefault(shard, []).append((i, 0, path, False, 0, -1))
            continue
        ranges = max(1, -(-count(path) // per_range))
        want.setdefault(shard, []).extend(
            (i, r, path, True, r * per_range, -1 if r == ranges - 1 else (r + 1) * per_range)
            for r in range(ranges))
    tasks, shards = plan.write_tasks(tmp_path / "inputs.txt", tmp_path / "tasks.bin",
                                     shard_size, per_task, per_range, skip=skip,
                                     frame_count=count)
    assert shards == len(want) == 3
    table = plan.TaskTable(tmp_path / "inputs.txt", tmp_path / "tasks.bin")
    got = {}
    for number in range(tasks):
        parts = table.parts([number])
        assert len(set(parts["shard"])) == 1  # a task is of one shard
        images = [v for v in parts["video"] if not v]
        assert 1 <= len(parts["path"]) and len(images) in (0, len(parts["path"]))
        assert len(images) <= per_task and (images or len(parts["path"]) == 1)
        for row in zip(*(parts[k] for k in plan.PART_COLUMNS)):
            shard, rest, shard_parts = row[0], row[1:-1], row[-1]
            got.setdefault(shard, []).append(rest)
            assert shard_parts == len(want[shard])
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in want.items()}
    # the images of a shard in as few tasks as its runs allow: ceil(images / per task)
    images = sum(1 for k in want for r in want[k] if not r[3])
    ranges = sum(1 for k in want for r in want[k] if r[3])
    assert tasks == ranges + sum(-(-sum(1 for r in v if not r[3]) // per_task)
                                 for v in want.values()) and images == 8
    with pytest.raises(IndexError):
        table.parts([tasks])
    # an inputs.txt edited since the plan is refused, not read at shifted offsets
    (tmp_path / "inputs.txt").write_bytes(b"/x.jpg\n" + (tmp_path / "inputs.txt").read_bytes())
    with pytest.raises(ValueError, match="changed since task"):
        [plan.TaskTable(tmp_path / "inputs.txt", tmp_path / "tasks.bin").parts([n])
         for n in range(tasks)]


def test_the_default_task_size_keeps_a_run_near_4096_tasks():
    """8 images per task up to 128 shards of 256 inputs; then larger tasks, one per shard
    from 4,096 shards on (worked out by hand: ceil(256 / (4096 // shards)))."""
    for inputs, expected in [(1, 8), (10_000, 8), (128 * 256, 8), (128 * 256 + 1, 9),
                             (40_001, 10), (100_000, 26), (1_000_000, 256),
                             (10_000_000, 256)]:
        assert plan.default_images_per_task(inputs, 256) == expected, inputs
    assert plan.default_images_per_task(100, 5) == 5  # never more than a shard
    for inputs in (1, 5_000, 33_000, 99_999, 400_000, 1_048_577, 3_000_000):
        shards = plan.shard_count(inputs, 256)
        per_task = plan.default_images_per_task(inputs, 256)
        assert shards * -(-256 // per_task) <= max(plan.MAX_DEFAULT_TASKS, shards), inputs


def test_the_task_numbers_are_one_block_each_and_their_read_tasks_pickle_small():
    import ray.cloudpickle

    from pose.batch.extraction import task_numbers

    read_tasks = task_numbers(5).get_read_tasks(5)
    blocks = [list(task()) for task in read_tasks]
    assert [[b.column("id").to_pylist() for b in bs] for bs in blocks] == [
        [[n]] for n in range(5)]
    assert [t.metadata.num_rows for t in read_tasks] == [1] * 5
    # Ray Data puts every read task in the object store and keeps it for the whole run
    assert max(len(ray.cloudpickle.dumps(t)) for t in read_tasks) < 1000


def test_the_errors_are_merged_in_input_order_in_row_groups_of_several_shards(tmp_path):
    from pose.batch.shards import merge_errors

    (tmp_path / "errors").mkdir()
    want = []
    for shard in range(5):  # each shard's rows out of order, as the writer may leave them
        rows = [dict(input=shard * 10 + i, source=f"/x/{shard}-{i}.mp4", frame_start=start,
                     frame_stop=None, reason=f"r{shard}") for i, start in
                [(2, None), (0, 32), (0, 0), (1, None)]]
        pq.write_table(pa.Table.from_pylist(rows, schema=stages.ERROR_SCHEMA),
                       tmp_path / "errors" / plan.SHARD_NAME.format(shard))
        want += sorted(rows, key=lambda r: (r["input"], r["frame_start"] is None,
                                            r["frame_start"] or 0))
    merge_errors(str(tmp_path), group_rows=6)
    merged = pq.ParquetFile(tmp_path / "errors.parquet")
    assert merged.read().to_pylist() == want
    # rows of whole shards, a group once it holds 6 or more: shards 0+1, 2+3, then 4
    assert [merged.metadata.row_group(i).num_rows for i in range(
        merged.metadata.num_row_groups)] == [8, 8, 4]


def _rows(shard, input, people=1):
    """The pose stage's rows of one image part: its marker and ``people`` persons."""
    common = dict(shard=shard, input=input, range=0, part_rows=1, shard_parts=2,
                  source=f"/x/{input}.jpg",
                  image_id=input, width=8, height=6, frame_start=0, frame_stop=-1)
    rows = [dict(common, marker=True, dropped_boxes=0, read_s=0.0, box_s=0.0, pose_s=0.0)]
    rows += [dict(common, marker=False, person=p, box=[0.0, 0.0, 8.0, 6.0], box_score=1.0,
                  score=0.5, keypoints_x=[1.0], keypoints_y=[2.0], keypoints_score=[0.5])
             for p in range(people)]
    return rows


def test_the_writer_drops_a_shards_state_once_written_and_ignores_late_copies(tmp_path):
    for folder in ("poses", "errors"):
        (tmp_path / folder).mkdir()
    writer = ShardWriter(str(tmp_path), ["nose"])  # each shard's part count: from its rows

    def add(*rows):
        writer.add(pa.Table.from_pylist([r for part in rows for r in part],
                                        schema=stages.RESULT_SCHEMA))

    add(_rows(0, 0), _rows(1, 2))
    add(_rows(0, 0))  # a retried task's copy while its shard is in flight: counted once
    assert writer.written == 0 and set(writer.finished) == {0, 1}
    add(_rows(0, 1, people=2))
    assert writer.written == 1 and (tmp_path / "poses" / plan.SHARD_NAME.format(0)).exists()
    assert 0 not in writer.finished and 0 not in writer.done_parts and 0 not in writer.expected
    shard0 = tmp_path / "poses" / plan.SHARD_NAME.format(0)
    stamp = shard0.stat().st_mtime_ns
    add(_rows(0, 1, people=2), _rows(1, 3))  # a late copy of a written shard's part
    assert writer.written == 2 and shard0.stat().st_mtime_ns == stamp
    # nothing per input, part or shard is left once every shard is written
    assert writer.parts == {} and writer.finished == {} and writer.done_parts == {}
    assert writer.people == {} and writer.markers == {} and writer.expected == {}
    assert pq.read_table(shard0).column("input").to_pylist() == [0, 1, 1]
    assert writer.counts.images == 4 and writer.counts.people == 5
    assert sorted(os.listdir(tmp_path / "poses")) == [plan.SHARD_NAME.format(i)
                                                      for i in (0, 1)]
