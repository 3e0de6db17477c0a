"""HRNet + Polarized Self-Attention pose estimation, by layer (lowest first):

``fileio`` and ``config`` → ``models`` (HRNet, loss, complexity), ``codec`` and
``visualization`` → ``evaluation`` (metrics, predictor, evaluator) → ``engine`` (checkpoints,
training) → ``apis`` (inference on user inputs, export) → ``experiments`` (PSA comparison,
demo, benchmarks). Each imports only from the layers below it (checked by import-linter).
"""
