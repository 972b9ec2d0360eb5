"""register_model as a plain decorator (no model registry is needed here)."""


def register_model(fn):
    return fn
