# The engine image: API (`commerce serve`) and workers (`commerce worker`) from one build.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY web ./web
COPY workers ./workers
COPY ops ./ops
COPY loadtests ./loadtests
RUN pip install . && useradd --system --uid 10001 commerce
USER commerce
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz').status==200 else 1)"
CMD ["commerce", "serve", "--host", "0.0.0.0", "--port", "8080"]
