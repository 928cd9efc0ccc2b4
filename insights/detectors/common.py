"""What every detector returns, and the score → severity rule they share."""

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

SEVERITY_CUTS = ((9.0, "high"), (6.0, "medium"), (0.0, "low"))


@dataclass
class Finding:
    feature_id: int | None
    date: date
    detector: str
    metric: str
    value: float
    expected: float | None
    score: float
    severity: str
    details: dict[str, Any] = field(default_factory=dict)


def severity_for(score: float) -> str:
    magnitude = abs(score)
    for cut, name in SEVERITY_CUTS:
        if magnitude >= cut:
            return name
    return "low"


def finite(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0
