"""Alert rules beyond anomalies: a tenant's own thresholds on metrics, funnel conversion and
retention, checked after each rollup and delivered like anomalies.

`rules` validates and stores rules, `evaluate` measures them through `analytics.queries`
and records firings (one per rule and day), `delivery` sends the firings by e-mail and to
`alert.fired` webhooks (signed JSON or Slack-compatible), `tasks` is the Celery adapter the
post-rollup task enqueues."""
