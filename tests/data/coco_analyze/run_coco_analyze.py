"""Run coco-analyze's own code on this folder's inputs and write reference.json.

    python tests/data/coco_analyze/run_coco_analyze.py /path/to/coco-analyze

Run outside the repository's code: the argument is a checkout of matteorr/coco-analyze
(with the Python 3 changes listed in README.md); its ``pycocotools`` package (a modified
copy of COCO's, with ``COCOanalyze``) is imported from there, ahead of any installed
pycocotools. Needs NumPy and Matplotlib only: the modules that coco-analyze imports for
its figures and masks (``colour``, ``skimage.io``, the compiled ``pycocotools._mask``)
are replaced by empty stand-ins, as nothing of them is used by the analysis itself.

Its parameters are its defaults (``Params.setKpParams``: OKS 0.1 localisation, ks 0.5 /
0.85, maxDets 20, errors corrected in the order miss, swap, inversion, jitter) except the
area range: one range, COCOeval's "all" (0 to 1e10), where coco-analyze's "all" starts at
32² (COCO's keypoint annotations have no smaller people; generated sets can).
"""

import json
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))


def _stand_ins():
    colour = types.ModuleType("colour")
    colour.Color = object
    skimage = types.ModuleType("skimage")
    skimage.io = types.ModuleType("skimage.io")
    mask = types.ModuleType("pycocotools._mask")
    for name in ("iou", "merge", "frPyObjects", "encode", "decode", "area", "toBbox"):
        setattr(mask, name, None)  # never called for keypoints
    sys.modules.update({"colour": colour, "skimage": skimage, "skimage.io": skimage.io,
                        "pycocotools._mask": mask})


def main(checkout):
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    sys.path.insert(0, os.path.abspath(checkout))
    _stand_ins()
    from pycocotools.coco import COCO
    from pycocotools.cocoanalyze import COCOanalyze

    assert os.path.dirname(sys.modules["pycocotools.cocoanalyze"].__file__).startswith(
        os.path.abspath(checkout))
    coco_gt = COCO(os.path.join(HERE, "annotations.json"))
    with open(os.path.join(HERE, "results.json")) as f:
        results = json.load(f)  # at most 20 per image already: no reordering
    coco_dt = coco_gt.loadRes(results)
    analyze = COCOanalyze(coco_gt, coco_dt, "keypoints")
    analyze.params.areaRng = [[0 ** 2, 1e5 ** 2]]
    analyze.params.areaRngLbl = ["all"]
    analyze.analyze(check_kpts=True, check_scores=True, check_bckgd=True)
    analyze.summarize(makeplots=False)

    classes = ("good", "jitter", "inversion", "swap", "miss")
    matched = [d for d in analyze.corrected_dts["all"] if "good" in d]
    per_keypoint = {name: {c: int(sum(d[c][k] for d in matched)) for c in classes}
                    for k, name in enumerate(analyze.params.kpts_name)}
    counts = {c: sum(p[c] for p in per_keypoint.values()) for c in classes}
    steps = {"baseline": "original", "miss": "miss", "swap": "swap",
             "inversion": "inversion", "jitter": "jitter", "score": "score",
             "bckgd_false_pos": "background_fp", "false_neg": "background_fn"}
    ap_by_threshold = {}
    for stat in analyze.stats:
        if stat["areaRngLbl"] == "all":
            ap_by_threshold.setdefault(steps[stat["err"]], {})[
                f"{float(stat['oks']):.2f}"] = float(stat["auc"])
    ap_steps = {}
    for step, by_oks in ap_by_threshold.items():
        ap_steps[step] = {"AP": float(np.mean([by_oks[k] for k in sorted(by_oks)])),
                          "AP50": by_oks["0.50"], "AP75": by_oks["0.75"],
                          "AP_by_oks": dict(sorted(by_oks.items()))}
    background = {f"{float(oks):.2f}": {
        "false_positives": len(analyze.false_pos_dts["all", str(oks)]),
        "false_negatives": len(analyze.false_neg_gts["all", str(oks)])}
        for oks in sorted(analyze.params.oksThrs)}
    reference = {
        "source": "matteorr/coco-analyze " + _commit(checkout),
        "parameters": {"oksLocThrs": analyze.params.oksLocThrs,
                       "jitterKsThrs": list(analyze.params.jitterKsThrs),
                       "maxDets": list(analyze.params.maxDets),
                       "areaRng": analyze.params.areaRng,
                       "err_types": list(analyze.params.err_types)},
        "detections": len(results),
        "matched_detections": len(matched),
        "counts": counts,
        "per_keypoint": per_keypoint,
        "ap_steps": ap_steps,
        "background_after_corrections": background,
    }
    with open(os.path.join(HERE, "reference.json"), "w") as f:
        json.dump(reference, f, indent=1)
        f.write("\n")
    print(json.dumps({"counts": counts, "matched": len(matched),
                      "ap": {s: v["AP"] for s, v in ap_steps.items()}}, indent=1))


def _commit(checkout):
    import subprocess

    try:
        return subprocess.run(["git", "-C", checkout, "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "(unknown commit)"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} /path/to/coco-analyze")
    main(sys.argv[1])
