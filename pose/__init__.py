"""HRNet + Polarized Self-Attention pose estimation: model, codec, engine, evaluation."""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) hides our own output;
# an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
