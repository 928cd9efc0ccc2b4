"""What kind of process this is, set by its entry point before the settings load.

`wsgi.py` and `asgi.py` set "web"; every other process (manage.py commands, the stream
consumers, Celery workers, migrations, the tests) keeps "other". settings/database.py reads it to
give web processes their statement_timeout. A module attribute rather than an environment
variable, so processes a web process might start do not inherit it."""

kind = "other"
