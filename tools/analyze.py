"""Diagnose the keypoint errors of a COCO results file (Ronchi & Perona, ICCV 2017).

    python tools/analyze.py --annotations ANN.json --results RES.json --out DIR
                            [--dataset PRESET|META.yaml] [--definitions coco-analyze]
                            [--overwrite]

Matches the results to the annotations at OKS 0.1 (pycocotools' COCOeval), classifies
every labelled keypoint of a matched detection as good, jitter, inversion, swap or miss,
counts background false positives and false negatives, and measures the AP after each
error is corrected in turn. Writes diagnosis.json, diagnosis.md and two figures
(diagnosis_errors.png: error shares per keypoint; diagnosis_pr.png: precision-recall at
OKS .5 with each error fixed). --dataset gives the sigmas and flip pairs of a non-COCO
keypoint set (default: the file's category with COCO's sigmas). --definitions
coco-analyze follows the authors' code (matteorr/coco-analyze) where it differs from the
issue's definitions (the default), e.g. to compare with numbers it published
(tests/data/coco_analyze/README.md lists the differences). Bad input ends in one line
``error: ...`` and exit code 2 (--debug shows the traceback).
"""

import sys

from pose.errors import hide_native_output
from pose.options import ToolArgumentParser

if __name__ == "__main__":  # first: native start-up lines must not reach stderr
    hide_native_output()

from pose.checks import claim_output_folder
from pose.errors import run_tool
from pose.evaluation.diagnosis import DEFINITIONS
from pose.evaluation.diagnosis_files import DIAGNOSIS_OUTPUTS, diagnose_files


def main(argv=None):
    parser = ToolArgumentParser(tool="analyze", description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", required=True, help="COCO keypoint annotation file")
    parser.add_argument("--results", required=True, help="COCO keypoint results JSON")
    parser.add_argument("--dataset", metavar="PRESET|YAML",
                        help="dataset metadata (sigmas, flip pairs) for a non-COCO set")
    parser.add_argument("--definitions", choices=DEFINITIONS, default="issue",
                        help="the issue's definitions of the classes, corrections and "
                             "background steps (default), or coco-analyze's own")
    parser.add_argument("--out", required=True, output="folder",
                        help="folder for diagnosis.json, diagnosis.md and the figures")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into --out even when it holds files this tool did not "
                             "write (those of the same names are replaced)")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a user error")
    args = parser.parse_args(argv)

    outputs = claim_output_folder(args.out, "tools/analyze.py",
                                  [args.annotations, args.results], overwrite=args.overwrite)
    report = diagnose_files(args.annotations, args.results, args.out, dataset=args.dataset,
                            definitions=args.definitions)
    outputs.record(*DIAGNOSIS_OUTPUTS)
    counts = ", ".join(f"{name} {n}" for name, n in report["counts"].items())
    print(f"keypoints: {counts}; AP {report['ap_steps']['original']['AP']:.3f}")
    print(f"wrote {args.out}/diagnosis.json, diagnosis.md and the figures")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
