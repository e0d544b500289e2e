"""Make the collection importable as ``ansible_collections.entraid.dirsync`` and the lab as ``dirsync_lab``."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The Makefile links the repository to .venv/collections/ansible_collections/entraid/dirsync.
COLLECTIONS = os.path.join(ROOT, ".venv", "collections")
for path in (COLLECTIONS, os.path.join(ROOT, "lab")):
    if path not in sys.path:
        sys.path.insert(0, path)
