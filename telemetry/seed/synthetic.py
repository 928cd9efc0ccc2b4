"""A synthetic stand-in for MovieLens 100k with the same columns and shape, for machines that
reach neither the hub nor a local copy.

Calibrated on the real data set: 943 users with at least 20 ratings each (median 65, a long
tail up to ~740), 1,682 items with a long-tailed popularity, each (user, item) pair rated at
most once, ratings 1–5 in MovieLens' proportions, timestamps from 1997-09-20 to 1998-04-22
where most users rate in one sitting on the day they join and some come back for weeks,
and users aged 7–73 (mean ≈ 34), 71 % male.
"""

import numpy as np
import pandas as pd

from .dataset import MovieLensData

USERS = 943
ITEMS = 1682
RATINGS = 100_000
MIN_PER_USER = 20
MAX_PER_USER = 737
RATING_SHARES = (0.0611, 0.1137, 0.27145, 0.34174, 0.21201)  # ratings 1..5 in MovieLens 100k
FIRST_TS = 874_724_710  # 1997-09-20
LAST_TS = 893_286_638  # 1998-04-22
MALE_SHARE = 0.71
OCCUPATIONS = ("student", "other", "educator", "engineer", "programmer", "administrator", "writer", "librarian")
DAY = 86_400


def _per_user_counts(rng: np.random.Generator) -> np.ndarray:
    """At least 20 each, log-normal tail, exactly RATINGS in total."""
    extra = rng.lognormal(mean=3.8, sigma=1.3, size=USERS)
    extra *= (RATINGS - MIN_PER_USER * USERS) / extra.sum()
    counts = np.minimum(MIN_PER_USER + np.floor(extra).astype(np.int64), MAX_PER_USER)
    # Hand out what rounding and the cap left over, in proportion to each user's appetite.
    short = RATINGS - int(counts.sum())
    while short > 0:
        room = np.flatnonzero(counts < MAX_PER_USER)
        picks = rng.choice(room, size=min(short, room.size), replace=False, p=extra[room] / extra[room].sum())
        counts[picks] += 1
        short -= picks.size
    return counts


def _timestamps(rng: np.random.Generator, n: int) -> np.ndarray:
    """One user's rating times: a join time, then either one sitting (~an hour) or, for about
    a third of users, visits spread over the following weeks."""
    join = rng.integers(FIRST_TS, LAST_TS - DAY)
    if rng.random() < 0.62:
        span = rng.uniform(600, 3 * 3600)
    else:
        span = min(rng.exponential(60 * DAY), LAST_TS - join)
    offsets = np.sort(rng.uniform(0, span, size=n))
    return np.minimum(join + offsets.astype(np.int64), LAST_TS)


def _cover_every_item(rng: np.random.Generator, users: np.ndarray, items: np.ndarray) -> None:
    """Like MovieLens, every item has at least one rating: an item the draw missed takes over
    one rating of an item rated many times, from a user who has not rated it yet."""
    counts = np.bincount(items, minlength=ITEMS + 1)
    for missing in np.flatnonzero(counts[1:] == 0) + 1:
        while True:
            row = int(rng.integers(items.size))
            if counts[items[row]] > 1 and not np.any((users == users[row]) & (items == missing)):
                counts[items[row]] -= 1
                items[row] = missing
                counts[missing] += 1
                break


def synthetic_movielens(*, seed: int = 42) -> MovieLensData:
    rng = np.random.default_rng(seed)
    counts = _per_user_counts(rng)
    popularity = rng.lognormal(mean=3.3, sigma=1.25, size=ITEMS)
    popularity /= popularity.sum()

    user_ids, item_ids, stamps = [], [], []
    for user, n in enumerate(counts, start=1):
        user_ids.append(np.full(n, user, dtype=np.int64))
        item_ids.append(rng.choice(ITEMS, size=n, replace=False, p=popularity).astype(np.int64) + 1)
        stamps.append(_timestamps(rng, n))
    user_col, item_col = np.concatenate(user_ids), np.concatenate(item_ids)
    _cover_every_item(rng, user_col, item_col)
    ratings = pd.DataFrame(
        {
            "user_id": user_col,
            "item_id": item_col,
            "rating": rng.choice(np.arange(1, 6, dtype=np.int64), size=RATINGS, p=RATING_SHARES),
            "timestamp": np.concatenate(stamps),
        }
    )
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, USERS + 1, dtype=np.int64),
            "age": np.clip(np.rint(rng.gamma(shape=7.8, scale=4.37, size=USERS)), 7, 73).astype(np.int64),
            "gender": rng.permutation(np.where(np.arange(USERS) < round(MALE_SHARE * USERS), "M", "F")),
            "occupation": rng.choice(OCCUPATIONS, size=USERS),
            "zip_code": [f"{z:05d}" for z in rng.integers(1000, 99999, size=USERS)],
        }
    )
    return MovieLensData(ratings=ratings, users=users, items=None, source="synthetic", detail="synthetic generator")
