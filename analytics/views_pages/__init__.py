"""Analytics pages: Dashboard (`dashboard`), Features (`features`), Users (`users`), Retention
and Funnels (`cohorts`); what they share is in `common`.

Each view parses the query string with `analytics.params` (the API's parser), calls the
`analytics.queries` functions the API calls, and renders. Under htmx (a filter change, a
search keystroke, a sort click) the same view renders only the fragment that changed; the
URL is pushed by htmx, so a filtered page is shareable and the back button reloads it.
"""
