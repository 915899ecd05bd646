# The predwatch image: CLI, analyzers, shipper, daemon and the demo services.
FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY logging_adapter ./logging_adapter
COPY analyzers ./analyzers
COPY kibana ./kibana
COPY alerting ./alerting
COPY predwatch ./predwatch
RUN pip install --no-cache-dir '.[demo]'
RUN useradd --create-home predwatch && mkdir -p /logs /state && chown predwatch /logs /state
USER predwatch
ENTRYPOINT []
CMD ["predwatch", "--help"]
