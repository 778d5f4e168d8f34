"""Exception families (DESIGN.md): one type per failure family, messages a radiographer understands.

Apps catch ``CorpusCTError`` at the top level, print the message, write no partial result and exit
non-zero with the family's exit code.
"""


class CorpusCTError(Exception):
    """Base of all errors CorpusCT reports to the user."""

    exit_code = 1


class BadInputError(CorpusCTError):
    """The input study cannot be used (no CT, unreadable files, inconsistent geometry, missing tags)."""

    exit_code = 2


class MissingAnatomyError(CorpusCTError):
    """The scan does not cover the anatomy a result needs (e.g. no waist in a head scan)."""

    exit_code = 3


class ModelError(CorpusCTError):
    """A model bundle is missing, inconsistent or produced an invalid result."""

    exit_code = 4


class PacsError(CorpusCTError):
    """A PACS destination refused or could not be reached (results are spooled, never dropped)."""

    exit_code = 5
