"""The bottom layer every app builds on: API base views, the error shape, pagination,
parsers, caches, rate limits, request-body handling and test helpers. It imports no app."""
