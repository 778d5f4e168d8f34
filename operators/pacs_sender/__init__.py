"""PACS sender: C-ECHO + C-STORE (pynetdicom) with bounded retries and an on-disk spool that never loses a file.

Pure module ``sender`` (no holoscan import): ``PacsDestination`` (from app configuration or the environment:
CORPUSCT_PACS_AET, CORPUSCT_PACS_HOST, CORPUSCT_PACS_PORT, CORPUSCT_CALLING_AET, optional TLS),
``RetryPolicy``, ``send_files``, ``resend_spool``, ``echo``, ``Spool``. Command line:
``python -m operators.pacs_sender {echo,send,resend,list}``. Operator: ``operators.pacs_sender.operator``.
"""

from .sender import (
    FileOutcome,
    PacsDestination,
    RetryPolicy,
    SendReport,
    Spool,
    SpoolEntry,
    TLSConfig,
    default_spool_dir,
    echo,
    resend_spool,
    send_files,
)

__all__ = ["FileOutcome", "PacsDestination", "RetryPolicy", "SendReport", "Spool", "SpoolEntry", "TLSConfig",
           "default_spool_dir", "echo", "resend_spool", "send_files"]
