"""A fresh, migrated database on either store backend per test (see tests/store_backends.py)."""

from store_backends import Store, served_path, store

__all__ = ["Store", "served_path", "store"]
