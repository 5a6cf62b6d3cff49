"""``python -m shadowline`` is the ``shadowline`` command."""

from shadowline.cli import main

main()
