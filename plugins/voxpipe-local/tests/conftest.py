"""Shared test set-up for voxpipe-local."""

from __future__ import annotations

import sys
from pathlib import Path

# test_espeak_command.py builds on test_espeak.py; --import-mode=importlib (the root's
# setting) does not put this folder on sys.path.
sys.path.insert(0, str(Path(__file__).parent))
