"""The columns of the CSV downloads, shared by the API (`?format=csv`) and the pages'
"Download CSV" links: the header of a file with no rows (a file with rows is headed by its
rows' keys, the same ones)."""

FEATURE_USAGE_COLUMNS = (
    "feature_id",
    "feature_key",
    "feature_name",
    "events",
    "avg_daily_active_users",
    "avg_session_duration",
    "share",
    "previous_events",
    "change_pct",
    "stickiness_pct",
)
USER_ACTIVITY_COLUMNS = ("user_id", "email", "events", "avg_session_duration", "first_seen", "last_seen", "top_feature")
ACCOUNT_LIST_COLUMNS = (
    "account_id",
    "name",
    "active_users",
    "events",
    "previous_events",
    "features_used",
    "trend_pct",
    "at_risk",
    "last_seen",
    # Under `feature`: the account's events of that feature; empty otherwise.
    "feature_events",
)
