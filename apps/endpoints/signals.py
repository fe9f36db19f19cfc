"""What endpoints tells the apps above it, which it does not import (docs/architecture.md: layers point down).

The apps that care connect a receiver in their AppConfig.ready(); a receiver runs in the sender's transaction.
"""

from __future__ import annotations

from django.dispatch import Signal

# Instances of a deployment started or stopped holding capacity: running (starting, ready or not, restarting,
# terminating), or not any more (pending, evicted, failed, gone). The reconcile loop sends it while it mirrors
# what the backend sees into Instance rows. Keyword arguments: deployment (Deployment), instances (list[str],
# instance names), holds_capacity (bool), at (datetime). apps.costs keeps its capacity history from it.
instances_capacity_changed = Signal()

# A traffic split or mirror is about to change (inside the writer's transaction, before it is saved). Keyword
# arguments: endpoint (Endpoint, locked), user (or None), force (bool), origin ("user" or "rollout"), traffic (the
# new split). A receiver may refuse the change by raising ApplicationError: apps.rollouts refuses a manual change
# while a rollout runs, unless force (then it aborts the rollout).
traffic_changing = Signal()
