# The studio itself: web (Django + API + websockets), gateway, Celery worker and beat share this image.
#
#   docker build -f deploy/studio.Dockerfile -t ghcr.io/studio-ml/studio:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STUDIO_HOME=/var/lib/studio \
    STUDIO_STATIC_ROOT=/opt/studio/staticfiles

WORKDIR /opt/studio
COPY pyproject.toml README.md ./
COPY studio/ studio/
COPY apps/ apps/
COPY gateway/ gateway/
COPY runtime/ runtime/
COPY cli/ cli/
COPY templates/ templates/
COPY static/ static/
COPY manage.py ./
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 1000 studio \
    && mkdir -p /var/lib/studio && chown studio /var/lib/studio \
    && STUDIO_SECRET_KEY=build-only python manage.py collectstatic --noinput

USER 1000
EXPOSE 8000 8001
CMD ["uvicorn", "studio.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
