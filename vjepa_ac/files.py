"""Writing result files atomically, so an interrupted job never leaves half a file behind."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def _finite_or_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_or_none(v) for v in x]
    return x


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: str | Path, data: Any) -> None:
    """Atomic JSON write; non-finite floats become null (JSON has no inf/NaN)."""
    write_text_atomic(path, json.dumps(_finite_or_none(data), indent=1))
