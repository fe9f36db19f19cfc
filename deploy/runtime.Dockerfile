# The runtime image: Python, the studio's inference server (`studio-infsrv`, azmlinfsrv-compatible), the
# storage initializer, and the self-contained runtime bundle at /opt/studio-runtime that the `studio-runtime`
# init container copies into every pod, so that environments with their own `image` (Azure's base images,
# a user's) serve score.py with that image's Python (3.9 or newer, glibc) without installing anything.
#
#   docker build -f deploy/runtime.Dockerfile -t ghcr.io/studio-ml/runtime:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/opt/studio

COPY runtime/requirements.txt /opt/studio/runtime/requirements.txt
RUN pip install --no-cache-dir -r /opt/studio/runtime/requirements.txt
COPY runtime/ /opt/studio/runtime/
# The bundle: the runtime's source, and its compiled dependencies for every CPython it supports (wheels only).
COPY deploy/runtime-bundle/studio-infsrv /opt/studio-runtime/bin/studio-infsrv
RUN mkdir -p /opt/studio-runtime/src \
    && cp -R /opt/studio/runtime /opt/studio-runtime/src/runtime \
    && for version in 3.9 3.10 3.11 3.12 3.13; do \
         pip install --no-cache-dir --quiet --only-binary=:all: --implementation cp \
           --python-version "$version" --platform "manylinux2014_$(uname -m)" \
           --target "/opt/studio-runtime/lib/cp$(echo "$version" | tr -d .)" -r /opt/studio/runtime/requirements.txt; \
       done \
    && chmod -R a+rX /opt/studio-runtime
RUN printf '#!/bin/sh\nexec python -m runtime "$@"\n' > /usr/local/bin/studio-infsrv \
    && chmod 0755 /usr/local/bin/studio-infsrv \
    && useradd --create-home --uid 1000 scorer \
    && mkdir -p /var/azureml-app && chown scorer /var/azureml-app

USER 1000
WORKDIR /var/azureml-app
EXPOSE 5001
ENTRYPOINT ["studio-infsrv"]
CMD ["--port", "5001"]
