"""Person boxes of a folder of images as a COCO detection-results file (``tools/detect.py``).

The file has the form of HRNet's released ``COCO_val2017_detections_AP_H_56_person.json``:
a JSON list of ``{"image_id", "category_id": 1, "bbox": [x, y, w, h], "score"}``, plus
``file_name`` (the image's base name), which ``tools/infer.py --boxes`` matches first.
``tools/test.py --boxes`` (``datasets.coco.load_eval_records``) reads it by ``image_id``.

``image_id``: with an annotation file, the id of the image of the same file name there
(images it does not list are skipped and reported); without one, the number of a
COCO-style name (``000000000785.jpg`` → 785), else a stable id derived from the file name
(the first 12 hex digits of its SHA-1: the same name gets the same id in every run).
"""

import dataclasses
import hashlib
import os

from datasets.images import ImageDecodeError, read_image_rgb
from pose.apis.boxes import clip_boxes
from pose.apis.inputs import ImageIds, InputError, image_id_from_name
from pose.apis.runner import Progress
from pose.fileio import write_json

PERSON_CATEGORY_ID = 1  # COCO's person category


def stable_image_id(file_name):
    """A COCO-style name's number, else a 48-bit id from the SHA-1 of the base name."""
    name = os.path.basename(file_name)
    number = image_id_from_name(name)
    if number is not None:
        return number
    return int(hashlib.sha1(name.encode("utf-8")).hexdigest()[:12], 16)


def annotation_ids(annotation_file):
    """``{base file name: image id}`` of a COCO annotation file's images.

    Raises:
        AnnotationError: naming the file (``datasets.coco.load_coco``).
    """
    from datasets.coco import load_coco

    coco = load_coco(annotation_file)
    return {os.path.basename(img["file_name"]): img["id"] for img in coco.imgs.values()}


@dataclasses.dataclass
class DetectionReport:
    """What ``detect_images`` did."""

    out_file: str
    num_images: int = 0
    num_boxes: int = 0
    no_boxes: list = dataclasses.field(default_factory=list)
    not_annotated: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)  # (path, reason)
    dropped_boxes: dict = dataclasses.field(default_factory=dict)

    def summary(self):
        lines = [f"wrote {self.num_boxes} person box(es) of {self.num_images} image(s) to "
                 f"{self.out_file}"]
        if self.no_boxes:
            lines.append(f"{len(self.no_boxes)} image(s) had no person box")
        if self.not_annotated:
            lines.append(f"skipped {len(self.not_annotated)} image(s) that the annotation "
                         "file does not list: " + ", ".join(self.not_annotated[:10])
                         + (" ..." if len(self.not_annotated) > 10 else ""))
        if self.dropped_boxes:
            lines.append("dropped box(es): " + ", ".join(
                f"{k}={v}" for k, v in sorted(self.dropped_boxes.items())))
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} unreadable file(s):")
            lines.extend(f"  {path}: {reason}" for path, reason in self.skipped)
        return "\n".join(lines)


def detect_images(source, inputs, out_file, annotation_file=None, verbose=1,
                  exif_orientation=True):
    """Run the person-box ``source`` on every image of ``inputs`` and write the detection
    results to ``out_file`` (atomically).

    Args:
        source: a person-box source (``pose.apis.detector.DetectorBoxes``, ...).
        inputs: ``InputFile`` list (``pose.apis.inputs.collect_inputs``); videos are refused.
        out_file: the JSON to write.
        annotation_file: COCO annotations whose image ids the entries take, or None.
        verbose: 0 silent, 1 progress on stderr.
        exif_orientation: bool, read photos upright (their EXIF orientation applied; boxes
            in the displayed frame). Default True.

    Returns:
        ``DetectionReport``.

    Raises:
        InputError: a video among the inputs, or no image processed.
    """
    videos = [item.path for item in inputs if item.kind != "image"]
    if videos:
        raise InputError(f"tools/detect.py takes images, not videos: {videos[0]!r}")
    ids = annotation_ids(annotation_file) if annotation_file else None
    report = DetectionReport(out_file=os.fspath(out_file))
    progress = Progress(len(inputs), verbose)
    results = []
    unique = ImageIds()  # two photos of one name in two folders: two ids
    for item in inputs:
        progress.add()
        if ids is not None and item.name not in ids:
            report.not_annotated.append(item.name)
            continue
        try:
            image = read_image_rgb(item.path, exif_orientation=exif_orientation)
        except (OSError, ImageDecodeError) as exc:
            report.skipped.append((item.path, str(exc).replace(item.path + ": ", "")))
            continue
        image_id = unique.assign(ids[item.name] if ids is not None
                                 else stable_image_id(item.name), item.path)
        h, w = image.shape[:2]
        boxes, scores, dropped = clip_boxes(*source(image, file_name=item.path,
                                                    image_id=image_id), w, h)
        for reason, count in dropped.items():
            report.dropped_boxes[reason] = report.dropped_boxes.get(reason, 0) + count
        if len(boxes) == 0:
            report.no_boxes.append(item.path)
        results.extend({"image_id": image_id, "category_id": PERSON_CATEGORY_ID,
                        "bbox": [round(float(v), 2) for v in box],
                        "score": round(float(score), 5), "file_name": item.name}
                       for box, score in zip(boxes, scores))
        report.num_images += 1
        report.num_boxes += len(boxes)
    if report.num_images == 0:
        raise InputError(f"no image was processed ({len(report.not_annotated)} not in the "
                         f"annotation file, {len(report.skipped)} unreadable); nothing written")
    write_json(results, out_file, indent=None)
    return report
