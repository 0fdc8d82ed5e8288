"""Run folders, the SQLite run index and checkpoints."""
