"""Evaluation: OKS, rescoring, OKS-NMS and COCOeval primitives (``metrics``), the
``Predictor`` (flip test, decoding, un-warp) and the COCO evaluator."""
