"""The `studio` command: an `az ml`-style CLI over the studio's REST API, and `studio up`."""
