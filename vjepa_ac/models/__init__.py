"""Models: the V-JEPA 2 video encoder, the pretraining predictor and the action-conditioned predictor."""

from vjepa_ac.models.ac_predictor import ACPredictor, ACPredictorConfig
from vjepa_ac.models.encoder import VideoEncoder
from vjepa_ac.models.predictor import MaskedPredictor

__all__ = ["VideoEncoder", "MaskedPredictor", "ACPredictor", "ACPredictorConfig"]
