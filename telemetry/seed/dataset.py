"""What every MovieLens source hands the seeder (`telemetry.seed.sources` for the real data,
`telemetry.seed.synthetic` for the generator), in a module of its own so that neither source
module imports the other for it."""

from dataclasses import dataclass

import pandas as pd


@dataclass
class MovieLensData:
    """A ratings frame with the columns `user_id, item_id, rating, timestamp` (all int64,
    timestamp in epoch seconds) plus optional users (`user_id, age, gender, occupation,
    zip_code`) and items (`item_id, title`) frames."""

    ratings: pd.DataFrame
    source: str  # "hf", "file", "recbole" or "synthetic": kept in every event's metadata
    users: pd.DataFrame | None = None
    items: pd.DataFrame | None = None
    detail: str = ""  # where exactly it came from, for the command's output
