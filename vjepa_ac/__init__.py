"""vjepa_ac: the world model (datasets, encoder, predictors, training loops, WorldModel API)."""

__all__ = ["WorldModel"]


def __getattr__(name: str):
    # Imported lazily so that `import vjepa_ac.data` does not pull in the whole model stack.
    if name == "WorldModel":
        from vjepa_ac.world_model import WorldModel

        return WorldModel
    raise AttributeError(f"module 'vjepa_ac' has no attribute {name!r}")
