# The runtime base image: Python, the studio's inference server (`studio-infsrv`, azmlinfsrv-compatible)
# and nothing else. Environments without their own `image` run on it; environments with an image
# must have `studio-infsrv` on PATH (install the studio's runtime package, or base on this image).
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
RUN printf '#!/bin/sh\nexec python -m runtime "$@"\n' > /usr/local/bin/studio-infsrv \
    && chmod 0755 /usr/local/bin/studio-infsrv \
    && useradd --create-home --uid 1000 scorer \
    && mkdir -p /var/azureml-app && chown scorer /var/azureml-app

# Pip requirements of an environment are installed at container start as this user (see docs/kubernetes.md).
ENV PATH=/home/scorer/.local/bin:$PATH PIP_USER=1
USER 1000
WORKDIR /var/azureml-app
EXPOSE 5001
ENTRYPOINT ["studio-infsrv"]
CMD ["--port", "5001"]
