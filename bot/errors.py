"""Errors a person caused and can fix by typing something else."""


class UsageError(Exception):
    """Bad input from a person: the message says what is wrong and what to type instead."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage
