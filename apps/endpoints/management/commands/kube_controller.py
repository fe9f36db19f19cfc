"""`python manage.py kube_controller`: the Kubernetes controller (apps/endpoints/backends/controller.py)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.endpoints.backends.controller import Controller, Enqueuer
from apps.endpoints.backends.kubernetes import ClusterClient


class Command(BaseCommand):
    help = "Run for the controller Lease and, while holding it, watch the cluster and queue observations."

    def handle(self, *args: Any, **options: Any) -> None:
        enqueuer = Enqueuer(lease_s=settings.STUDIO_KUBE_LEASE_S)
        controller = Controller(
            cluster=ClusterClient(),
            on_change=enqueuer.add,
            on_slice=enqueuer.readiness,
            on_leading=enqueuer.leading,
            lease_namespace=settings.STUDIO_KUBE_LEASE_NAMESPACE,
            lease_s=settings.STUDIO_KUBE_LEASE_S,
        )
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        flusher = threading.Thread(target=enqueuer.run, args=(stop,), name="enqueue", daemon=True)
        flusher.start()
        self.stdout.write(f"controller {controller.identity}: campaigning for the Lease")
        controller.run(stop)
        flusher.join(timeout=5)
