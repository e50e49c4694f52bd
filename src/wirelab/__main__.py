"""``python -m wirelab`` is the ``wirelab`` command."""

from .cli import main

if __name__ == "__main__":
    main()
