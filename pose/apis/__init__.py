"""Inference on the user's own inputs (inputs, box sources, estimator, run) and export."""
