"""`python -m runtime ...`: how the local backend starts an instance inside an environment's venv."""

from __future__ import annotations

from runtime.main import main

if __name__ == "__main__":
    main()
