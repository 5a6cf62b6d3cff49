"""The ``shadowline`` command: one entry point whose subcommands each package provides."""

from shadowline.stack import LocalStack, StackError

__all__ = ["LocalStack", "StackError"]
