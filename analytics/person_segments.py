"""The person segment (age band × gender) of an end user as the rollup steps write it, in
SQL on `telemetry_enduser` aliased `u`: the age bands are the filter's
(`analytics.queries.filters.AGE_BANDS`), an unknown age is the band "" and an unknown
gender "". The segment rollups, the dimension rollup and the per-segment recency rows all
take it from here, so a segment means the same everywhere."""

AGE_BAND_SQL = """CASE WHEN u.age IS NULL THEN '' WHEN u.age < 18 THEN '<18'
    WHEN u.age <= 40 THEN '18-40' ELSE '>40' END"""
GENDER_SQL = "COALESCE(u.gender, '')"
