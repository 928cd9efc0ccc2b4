"""The analytics app's models: daily rollups (`daily`), active-day bitmasks and recency rows
(`bitmasks`), saved segments (`segments`)."""

from .bitmasks import (
    AccountFeatureActiveDays,
    DailyAccountRecency,
    DailyEventTypeRecency,
    DailyFeatureRecency,
    DailyFeatureSegmentRecency,
    DailySegmentRecency,
    FeatureBit,
    FeatureRecencyStale,
    UserActiveDays,
    UserEventTypeActiveDays,
    UserFeatureActiveDays,
)
from .daily import (
    DailyAccountUsage,
    DailyDimensionUsage,
    DailyFeatureUsage,
    DailyOrgUsage,
    DailySegmentUsage,
    DailyUserFeatureUsage,
    DailyUserUsage,
)
from .segments import Segment

__all__ = [
    "AccountFeatureActiveDays",
    "DailyAccountUsage",
    "DailyDimensionUsage",
    "DailyEventTypeRecency",
    "DailyFeatureRecency",
    "DailySegmentRecency",
    "DailyAccountRecency",
    "DailyFeatureSegmentRecency",
    "DailyFeatureUsage",
    "DailyOrgUsage",
    "DailySegmentUsage",
    "DailyUserFeatureUsage",
    "DailyUserUsage",
    "FeatureBit",
    "FeatureRecencyStale",
    "Segment",
    "UserActiveDays",
    "UserEventTypeActiveDays",
    "UserFeatureActiveDays",
]
