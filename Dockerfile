# syntax=docker/dockerfile:1
# order-service: build the virtualenv in one stage, run it slim and unprivileged in another.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies change less often than code: this layer is reused while only code changes.
COPY pyproject.toml README.md ./
COPY service ./service
COPY schemas ./schemas
COPY events ./events
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim AS runtime
# The code runs from /app (PYTHONPATH), next to the sql/ directory it reads migrations and
# queries from: sql/ is not a Python package, so the installed wheel does not contain it.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8080
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY service ./service
COPY schemas ./schemas
COPY events ./events
COPY sql ./sql
COPY examples ./examples
USER app
EXPOSE 8080
# /health/live on PORT (serve), or on RELAY_HTTP_PORT when the container runs the relay.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "service.healthcheck"]
CMD ["order-service", "serve"]
