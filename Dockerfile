# The engine image: API (`commerce serve`) and workers (`commerce worker`) from one build.
# Two stages: dependencies are installed from the lock file (requirements.txt, compiled by
# pip-tools from pyproject.toml) into a virtualenv in the build stage; the runtime stage gets
# only that virtualenv. No embedded PostgreSQL/Valkey (the `dev` extra), no load tests, no tests.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
COPY requirements.txt /src/requirements.txt
RUN /venv/bin/pip install -r /src/requirements.txt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY web ./web
COPY workers ./workers
COPY ops ./ops
RUN /venv/bin/pip install --no-deps .

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/venv/bin:$PATH LOG_FORMAT=json
COPY --from=build /venv /venv
RUN useradd --system --uid 10001 commerce
USER commerce
WORKDIR /home/commerce
EXPOSE 8080 9191
# The API's check; docker-compose.yml gives the worker its own (python -m workers.health).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz').status==200 else 1)"
CMD ["commerce", "serve", "--host", "0.0.0.0", "--port", "8080"]
