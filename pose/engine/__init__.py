"""Training: building and checkpointing models, the ``fit`` loop and its callbacks."""
