"""Batch pose extraction on Ray Data (``tools/extract.py``): a layer above ``pose.apis``.

``pose.batch.plan`` lists the inputs, cuts them into shards and tasks and keeps the run's
manifest (no Ray); ``pose.batch.stages`` holds the Ray Data stages (read, person boxes,
pose), built from the same library steps as ``tools/infer.py``; ``pose.batch.extraction``
connects to Ray and runs the pipeline; ``pose.batch.shards`` writes the shards and the
files made from them.
"""
