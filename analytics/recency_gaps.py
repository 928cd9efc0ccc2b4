"""How long a day's users had been away, in SQL on active-day bitmask rows: what every
recency row (`recency`, `recency_segments`) is built from."""

from __future__ import annotations

from .active_days import BLOCK_DAYS

# How far back a day's row looks: a bitmask row's own block and the two before it. Ranges of
# up to RECENCY_DAYS + 1 days are read from the recency rows; longer ones from the bitmasks.
RECENCY_DAYS = 2 * BLOCK_DAYS

# A per-feature bitmask row's own block and its copies of the two before.
FEATURE_ROW_BLOCKS = ("active_days", "earlier_days_1", "earlier_days_2")


def gap_sql(index: int, blocks: tuple[str, str, str] = FEATURE_ROW_BLOCKS) -> str:
    """SQL: the days since a bitmask row's user was last active before day `index` of the
    row's block (1 … RECENCY_DAYS), 0 when not within RECENCY_DAYS; `blocks` are the SQL of
    the active days of the row's block and of the two before it. The nearest days are tested
    first: most users of a day were there a few days before."""
    whens = []
    for gap in range(1, RECENCY_DAYS + 1):
        position = index - gap
        blocks_back = 0 if position >= 0 else (-position - 1) // BLOCK_DAYS + 1
        bit = 1 << (position + blocks_back * BLOCK_DAYS)
        whens.append(f"WHEN ({blocks[blocks_back]} & {bit}) <> 0 THEN {gap}")
    return f"CASE {' '.join(whens)} ELSE 0 END"
