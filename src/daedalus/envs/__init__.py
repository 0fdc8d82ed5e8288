"""Making environments from profiles, vectorization and multi-agent adapters."""
