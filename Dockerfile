# syntax=docker/dockerfile:1
# Production image: the runtime requirements only (no tests, no tooling), built as wheels in
# a builder stage so the final stage has no compiler, running as a non-root user.
#
#   docker build -t usage-platform .
#   docker run --env-file .env -p 8000:8000 usage-platform          # web (gunicorn)
#   docker run --env-file .env usage-platform celery -A usage_platform worker
#
# docker-compose.yml runs migrations once, then web, worker, beat and the consumer.

FROM python:3.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A compiler only for the rare dependency without a wheel for this platform.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY requirements.txt .
RUN pip wheel --wheel-dir /wheels -r requirements.txt


FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The wheels are bind-mounted from the builder, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \
    python -m venv /opt/venv \
    && pip install --no-index --find-links=/wheels -r /tmp/requirements.txt

RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home app
WORKDIR /app
# The code stays root's (read-only for the app user); only var/ is writable.
COPY . .

# Static files are collected (and compressed by whitenoise) once, at build time; the
# bytecode is compiled here because the app user cannot write it at run time.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0 \
    && python -m compileall -q /app /opt/venv \
    && mkdir -p /app/var \
    && chown app:app /app/var

USER app
EXPOSE 8000
# Web by default; compose runs the worker, beat, consumer and migrate with other commands.
CMD ["gunicorn", "--config", "usage_platform/gunicorn.conf.py", "usage_platform.wsgi"]
