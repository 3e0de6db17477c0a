"""Compare COCO AP with and without PSA: train each variant on the same data and seeds.

    python tools/compare_psa.py --config CFG --variants none,parallel,sequential
                                [--forms paper,official,port]
                                [--placement branch|block] [--seeds 3] --workdir DIR
    python tools/compare_psa.py --config CFG --variants none,parallel,official-parallel,\
                                port-parallel --workdir DIR
    python tools/compare_psa.py --checkpoints none=a0.keras,none=a1.keras,none=a2.keras,\
                                parallel=b0.keras,parallel=b1.keras,parallel=b2.keras --workdir DIR

A PSA variant is a mode (``parallel``, ``sequential``: the config's ``model.psa_form``) or
FORM-MODE with FORM one of paper, official, port (psa/layers.py says what differs);
``--forms`` runs every mode given without a form once per form.

Every variant is trained with seeds 0..N-1 (``--seeds``, default 3): the same variant
retrained with another seed, or on another CPU kind, moves AP by more than PSA changes it
at small scale, so a verdict needs the seed-to-seed spread. A label repeated in
``--checkpoints`` gives that variant several seeds, paired in the order given (the i-th
checkpoint of one label with the i-th of another).

Writes DIR/comparison.md (first one verdict line per pair: every seed's AP, PSA − none
with its 95% interval over training seeds and validation images, and whether a
difference is shown; then the PSA placement/mode/form of each variant, AP per seed, AP/AR
as mean ± std over seeds, params, MACs, latency, and every pair's AP/AP50/AP75/APM/APL/AR
difference with its interval), DIR/comparison.json and DIR/comparison.png (bars with error
bars beside a forest plot of the differences) and DIR/report.html (all of it in one
self-contained page with the keypoint error diagnosis per variant and a gallery of the
validation images where the variants differ most, each keypoint coloured by its error
class). With one seed per variant the interval covers the choice of validation images
only and no verdict is drawn.

``--a-a`` adds each variant's A/A check (it needs at least 4 seeds of each): every pair
of single seeds with the image-only interval, every split of the seeds into two halves
with the interval over seeds and images, and how many of each find a difference where
there is none, e.g. ``--variants none --seeds 5 --a-a``.
"""

import argparse
import collections
import logging
import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) would hide this tool's
# own output; an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pose.errors import hide_native_output
from pose.options import ToolArgumentParser

if __name__ == "__main__":  # first: TensorFlow's C++ start-up lines must not reach stderr
    hide_native_output()

from pose.checks import claim_run_folder
from pose.config import load_config
from pose.experiments.comparison import (
    DEFAULT_SEEDS,
    MIN_SEEDS_FOR_A_A,
    PLACEMENTS,
    VARIANTS,
    compare_checkpoints,
    comparison_outputs,
    expand_forms,
    parse_variant,
    run_comparison,
)
from pose.experiments.comparison_report import (
    comparison_markdown,
    keypoint_error_lines,
    verdict_lines,
    write_comparison,
)
from psa import PSA_FORMS


def _checkpoint_list(text):
    pairs = []
    for item in text.split(","):
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise argparse.ArgumentTypeError(f"expected LABEL=PATH.keras, got {item!r}")
        pairs.append((label, path))
    return pairs


def _variant_list(text):
    variants = [v.strip() for v in text.split(",") if v.strip()]
    if not variants:
        raise argparse.ArgumentTypeError(f"no variant given in {text!r}")
    for variant in variants:
        try:
            parse_variant(variant)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return variants


def _form_list(text):
    forms = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in forms if f not in PSA_FORMS]
    if unknown or not forms:
        raise argparse.ArgumentTypeError(f"forms must be among {PSA_FORMS}, got {text!r}")
    return forms


def main(argv=None):
    parser = ToolArgumentParser(tool="compare_psa", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML config of the experiment")
    parser.add_argument("--variants", type=_variant_list, default=list(VARIANTS),
                        help="comma-separated: none, parallel, sequential, or FORM-MODE "
                             "(official-parallel, port-sequential, paper-parallel, ...)")
    parser.add_argument("--forms", type=_form_list,
                        help="comma-separated PSA forms (paper,official,port): each variant "
                             "given as a bare mode runs once per form")
    parser.add_argument("--placement", default="branch", choices=PLACEMENTS)
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                        help=f"training seeds per variant (default {DEFAULT_SEEDS}; a "
                             "verdict needs at least 2)")
    parser.add_argument("--checkpoints", type=_checkpoint_list,
                        help="LABEL=PATH,... of models trained elsewhere (repeat a label "
                             "for several seeds)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a config value")
    parser.add_argument("--resamples", type=int, default=1000,
                        help="bootstrap resamples of the validation images (default 1000)")
    parser.add_argument("--bootstrap-seed", type=int, default=0,
                        help="seed of the bootstrap resampling (default 0)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, each in its own process with cores/jobs "
                             "threads (default 1: one after another)")
    parser.add_argument("--a-a", dest="a_a", action="store_true",
                        help="also compare each variant against itself (needs at least 4 "
                             "seeds of each): how often an interval finds a difference "
                             "where there is none")
    parser.add_argument("--workdir", required=True, output="folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="use --workdir even when it holds files this tool did not write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if args.jobs > 1 and args.checkpoints:
        parser.error("--jobs is for training (--config); --checkpoints only evaluates")
    if args.forms and args.checkpoints:
        parser.error("--forms is for training (--config); a checkpoint has its own form")
    variants = expand_forms(args.variants, args.forms) if args.forms else args.variants
    if args.a_a and not args.checkpoints and args.seeds < MIN_SEEDS_FOR_A_A:
        parser.error(f"--a-a needs --seeds {MIN_SEEDS_FOR_A_A} or more, got {args.seeds}")
    if args.a_a and args.checkpoints:
        counts = collections.Counter(label for label, _ in args.checkpoints)
        short = sorted(label for label, n in counts.items() if n < MIN_SEEDS_FOR_A_A)
        if short:
            parser.error(f"--a-a needs at least {MIN_SEEDS_FOR_A_A} checkpoints of each label; "
                         + ", ".join(f"{label} has {counts[label]}" for label in short))
    if not args.checkpoints and not args.config:
        parser.error("give --config (train and compare) or --checkpoints")
    checkpoints = args.checkpoints or []
    config = load_config(args.config, args.overrides) if args.config else None
    claim_run_folder(args.workdir, "tools/compare_psa.py",
                     comparison_outputs(variants if not checkpoints else None,
                                        [label for label, _ in checkpoints]),
                     inputs=[args.config, *(path for _, path in checkpoints)],
                     overwrite=args.overwrite)
    bootstrap = dict(num_resamples=args.resamples, bootstrap_seed=args.bootstrap_seed,
                     a_a=args.a_a)
    if args.checkpoints:
        comparison = compare_checkpoints(args.checkpoints, config=config,
                                         out_dir=args.workdir, **bootstrap)
    else:
        comparison = run_comparison(config, args.workdir,
                                    variants=variants, placement=args.placement,
                                    seeds=args.seeds, jobs=args.jobs, **bootstrap)
    paths = write_comparison(comparison, args.workdir)
    print("\n" + comparison_markdown(comparison))
    print("wrote " + ", ".join(paths.values()))
    for check in comparison.get("a_a", []):
        print(f"A/A check, {check['variant']} against itself: one seed against one, "
              f"{check['single_excluding_zero']} of {len(check['single_seed_pairs'])} "
              "image-only intervals exclude 0; with seeds in the interval, "
              f"{check['splits_shown']} of {len(check['seed_splits'])} splits show a "
              "difference")
    for line in keypoint_error_lines(comparison):  # where the AP difference comes from
        print(line)
    for line in verdict_lines(comparison):  # last, where the eye lands
        print(line)


if __name__ == "__main__":
    from pose.errors import run_tool

    sys.exit(run_tool(main))
