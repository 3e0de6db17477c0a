"""Evaluation: OKS, rescoring, OKS-NMS and COCOeval primitives (``metrics``), the
``Predictor`` (flip test, decoding, un-warp), the COCO evaluator and the keypoint error
diagnosis of Ronchi & Perona (``diagnosis``)."""
