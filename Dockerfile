# syntax=docker/dockerfile:1
#
# One image for every Python part of proctorq: the API, the workers, beat, Flower and the
# migration step. docker-compose.yml picks the part with the command; the default is the API.
#
#   docker build -t proctorq .
#   docker run --rm --env-file .env -p 8000:8000 proctorq

# --- build: turn the repository into a wheel (only the files the package is made of) ---------
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY cli ./cli
COPY config ./config
COPY migrations ./migrations
COPY proctoring ./proctoring
COPY tasks ./tasks
COPY templates ./templates
COPY workers ./workers
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /wheels .

# --- runtime: the wheel and its dependencies, no sources, no build tools, no test extras -----
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PROCTORQ_VAR_DIR=/app/var

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=cache,target=/root/.cache/pip \
    pip install /wheels/*.whl

# An unprivileged user owning only the working directory's var/ (beat's schedule file, and
# e-mail files if no SMTP server is configured).
RUN groupadd --system --gid 10001 proctorq \
    && useradd --system --uid 10001 --gid proctorq --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin proctorq \
    && mkdir -p /app/var \
    && chown -R proctorq:proctorq /app/var

WORKDIR /app
USER proctorq:proctorq

EXPOSE 8000 5555

CMD ["proctorq", "api", "--host", "0.0.0.0"]
