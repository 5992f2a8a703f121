"""Models: the V-JEPA 2 video encoder and the pretraining predictor."""

from vjepa_ac.models.encoder import VideoEncoder
from vjepa_ac.models.predictor import MaskedPredictor

__all__ = ["VideoEncoder", "MaskedPredictor"]
