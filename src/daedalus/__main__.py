"""``python -m daedalus``."""

from daedalus.cli import main

main()
