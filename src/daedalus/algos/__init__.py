"""Built-in algorithms, one readable file each (ppo.py, ...)."""
