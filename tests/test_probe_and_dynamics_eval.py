"""vjepa_ac.probe (ridge fit, pooled features) and vjepa_ac.dynamics_eval (report files)."""

import json

import numpy as np
import torch
from omegaconf import OmegaConf

from vjepa_ac.dynamics_eval import markdown_table, write_report
from vjepa_ac.models import VideoEncoder
from vjepa_ac.models.encoder import vjepa2_config
from vjepa_ac.probe import pooled_features, ridge_r2


def test_ridge_r2_is_high_for_a_linear_target_and_low_for_noise():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 30))
    fit = np.arange(200) < 120
    linear = x[:, :3] @ rng.standard_normal((3, 2))
    assert ridge_r2(x, linear, fit, [0.01, 1.0, 100.0]) > 0.95
    assert ridge_r2(x, rng.standard_normal((200, 2)), fit, [0.01, 1.0, 100.0]) < 0.2


def test_pooled_features_shape():
    torch.manual_seed(0)
    encoder = VideoEncoder(vjepa2_config({"crop_size": 32, "patch_size": 8, "hidden_size": 24,
                                          "num_attention_heads": 2, "num_hidden_layers": 1, "pred_hidden_size": 24,
                                          "pred_num_attention_heads": 2}))
    frames = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    assert pooled_features(encoder, frames, grid=2, batch=2).shape == (5, 2 * 2 * 24)


def test_dynamics_report_writes_table_json_and_plot(tmp_path):
    errors = {"predictor": np.array([[0.1, 0.2], [0.3, 0.4]]), "copy last": np.ones((2, 2))}
    assert markdown_table(errors, "t").splitlines()[2:] == [
        "| horizon | predictor | copy last |", "|---:|---:|---:|",
        f"| 1 | 0.2000 ± {1.96 * 0.1 / np.sqrt(2):.4f} | 1.0000 ± 0.0000 |",
        f"| 2 | 0.3000 ± {1.96 * 0.1 / np.sqrt(2):.4f} | 1.0000 ± 0.0000 |"]
    cfg = OmegaConf.create({"checkpoint": "ckpt", "data": {"root": "logs"}, "eval": {"split": "val"}})
    table = write_report(cfg, errors, tmp_path / "out")
    assert (tmp_path / "out" / "horizons.md").read_text() == table + "\n"
    result = json.loads((tmp_path / "out" / "horizons.json").read_text())
    assert result["windows"] == 2 and result["mean_l1"]["predictor"] == [0.2, 0.3]
    assert (tmp_path / "out" / "horizons.png").stat().st_size > 0
