"""tools/analyze.py end to end in-process, and tools/test.py --diagnose: the diagnosis files
written and recorded as the tool's; each kind of bad results file is one ``error:`` line
and leaves nothing behind."""

import json
from pathlib import Path

import numpy as np
import pytest

from pose.checks import OutputManifest
from pose.errors import run_tool
from pose.evaluation.diagnosis_files import DIAGNOSIS_OUTPUTS
from tools import analyze
from tools import test as test_tool


def _results_from_truth(annotation_file, offset=3.0):
    """Results made of the ground truth moved by ``offset`` px and one jittered wrist."""
    data = json.loads(annotation_file.read_text())
    results = []
    for n, ann in enumerate(a for a in data["annotations"] if a.get("num_keypoints")):
        kpts = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)  # (K, 3)
        kpts[:, :2] += offset
        kpts[9, 0] += 0.1 * np.sqrt(ann["area"])  # left wrist: a jitter or a miss
        kpts[:, 2] = 1.0
        results.append({"image_id": ann["image_id"], "category_id": 1,
                        "keypoints": kpts.reshape(-1).tolist(), "score": 1.0 - 0.01 * n})
    return results


@pytest.fixture
def files(tmp_path, coco_sample_dir):
    annotations = coco_sample_dir / "person_keypoints_sample.json"
    results = tmp_path / "res.json"
    results.write_text(json.dumps(_results_from_truth(annotations)))
    return annotations, results


def test_analyze_writes_and_records_the_diagnosis(tmp_path, files, capsys):
    annotations, results = files
    out = tmp_path / "diag"
    argv = ["--annotations", str(annotations), "--results", str(results), "--out", str(out)]
    assert run_tool(analyze.main, argv) == 0
    report = json.loads((out / "diagnosis.json").read_text())
    assert list(report)[0] == "counts"
    assert set(report["counts"]) == {"good", "jitter", "inversion", "swap", "miss"}
    assert sum(report["counts"].values()) == report["keypoints"] > 0
    assert report["counts"]["good"] > 0 and report["background"]["false_positives"] == 0
    assert "## AP after correcting each error in turn" in (out / "diagnosis.md").read_text()
    for name in DIAGNOSIS_OUTPUTS:
        assert (out / name).stat().st_size > 0
        assert OutputManifest(str(out), "tools/analyze.py").files[name] == "tools/analyze.py"
    for name in ("diagnosis_errors.png", "diagnosis_pr.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "keypoints: good" in capsys.readouterr().out
    assert run_tool(analyze.main, argv) == 0  # its own folder again


@pytest.mark.parametrize("bad, message", [
    (lambda r: r[:1] + [dict(r[1], image_id=999999999)], "image 999999999"),
    (lambda r: r[:1] + [dict(r[1], keypoints=r[1]["keypoints"][:-3])], "of length 48"),
    (lambda r: r[:1] + [dict(r[1], keypoints=[float("nan")] * 51)], "not finite"),
    (lambda r: "{not json", "not valid JSON"),
    (lambda r: {"results": r}, "expected a list"),
])
def test_bad_results_are_one_error_line_naming_the_file(tmp_path, files, capsys, bad, message):
    annotations, results = files
    broken = bad(json.loads(results.read_text()))
    results.write_text(broken if isinstance(broken, str) else json.dumps(broken))
    out = tmp_path / "diag"
    argv = ["--annotations", str(annotations), "--results", str(results), "--out", str(out)]
    assert run_tool(analyze.main, argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and message in line and str(results) in line
    assert not out.exists()


def test_test_tool_diagnose_writes_the_diagnosis(tmp_path, files, monkeypatch, tiny_config):
    """tools/test.py --diagnose on the results it wrote. The network and its evaluation are
    replaced by the results file of ``files`` (their own tests run them): what is tested
    is that the flag diagnoses what the evaluation wrote, into --out, recorded."""
    from pose.config import save_config

    annotations, results = files
    config = tmp_path / "tiny.yaml"
    save_config(tiny_config, config)

    def evaluate_config(model, config, out_dir, **kwargs):
        (tmp_path / "eval").mkdir(exist_ok=True)
        (tmp_path / "eval" / "keypoints_results.json").write_text(results.read_text())
        (tmp_path / "eval" / "metrics.json").write_text("{}")
        return {"annotations": str(annotations)}

    monkeypatch.setattr(test_tool, "load_network", lambda *a, **k: (None, None))
    monkeypatch.setattr(test_tool, "runtime_description", lambda *a: "stand-in")
    monkeypatch.setattr(test_tool, "runtime_info", lambda *a: {})
    monkeypatch.setattr(test_tool, "evaluate_config", evaluate_config)
    out = tmp_path / "eval"
    assert run_tool(test_tool.main, ["--weights", str(tmp_path / "m.keras"), "--config",
                                     str(config), "--out", str(out), "--diagnose"]) == 0
    report = json.loads((out / "diagnosis.json").read_text())
    assert sum(report["counts"].values()) > 0
    manifest = OutputManifest(str(out), "tools/test.py").files
    assert all(manifest[name] == "tools/test.py" for name in DIAGNOSIS_OUTPUTS)


def test_analyze_reads_the_sigmas_and_flip_pairs_of_a_dataset_preset(tmp_path, capsys):
    """A 14-keypoint CrowdPose-style file: without --dataset there are no sigmas (one error
    line); with --dataset crowdpose a mirrored person is all inversions but the centre
    keypoints (head, neck)."""
    from tests.conftest import CROWDPOSE_NAMES

    xy = np.stack([np.arange(14) * 30.0 + 100, np.arange(14) * 20.0 + 100], axis=1)  # (14, 2)
    kpts = np.concatenate([xy, np.full((14, 1), 2.0)], axis=1)  # (14, 3)
    annotations = tmp_path / "crowd.json"
    annotations.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "1.jpg", "width": 800, "height": 800}],
        "categories": [{"id": 1, "name": "person", "keypoints": list(CROWDPOSE_NAMES)}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                         "area": 4000.0, "bbox": [100, 100, 390, 260],
                         "keypoints": kpts.reshape(-1).tolist(), "num_keypoints": 14}]}))
    mirrored = kpts[[1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13]]  # left <-> right
    results = tmp_path / "res.json"
    results.write_text(json.dumps([{"image_id": 1, "category_id": 1, "score": 1.0,
                                    "keypoints": mirrored.reshape(-1).tolist()}]))
    argv = ["--annotations", str(annotations), "--results", str(results)]
    assert run_tool(analyze.main, [*argv, "--out", str(tmp_path / "a")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    out = tmp_path / "b"
    assert run_tool(analyze.main, [*argv, "--out", str(out), "--dataset", "crowdpose"]) == 0
    report = json.loads((out / "diagnosis.json").read_text())
    assert report["counts"] == {"good": 2, "jitter": 0, "inversion": 12, "swap": 0, "miss": 0}


def test_analyze_definitions_reach_the_diagnosis(tmp_path):
    """--definitions coco-analyze gives coco-analyze's own numbers on its stored reference
    set (tests/data/coco_analyze); without it, the issue's definitions (other counts)."""
    data = Path(__file__).resolve().parents[1] / "data" / "coco_analyze"
    reference = json.loads((data / "reference.json").read_text())
    reports = {}
    for extra in ([], ["--definitions", "coco-analyze"]):
        out = tmp_path / f"diag{len(extra)}"
        argv = ["--annotations", str(data / "annotations.json"),
                "--results", str(data / "results.json"), "--out", str(out), *extra]
        assert run_tool(analyze.main, argv) == 0
        reports[len(extra)] = json.loads((out / "diagnosis.json").read_text())
    assert reports[2]["definitions"] == "coco-analyze"
    assert reports[2]["counts"] == reference["counts"]
    assert list(reports[2]["ap_steps"])[1] == "miss"  # coco-analyze's order
    assert reports[0]["definitions"] == "issue"
    assert reports[0]["counts"] != reference["counts"]
    assert list(reports[0]["ap_steps"])[1] == "jitter"
