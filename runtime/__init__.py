"""Studio's inference server: runs Azure ML scoring scripts unchanged, a drop-in for azmlinfsrv.

Imports nothing from Django or apps/: every deployment environment installs only
runtime/requirements.txt next to the user's own packages.
"""

from __future__ import annotations

__version__ = "0.1.0"
