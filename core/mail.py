"""The embedded default e-mail backend: messages go to files, never to the log.

Invitation e-mails carry a link that joins the organisation with the invited role (admin
included), so a console backend would hand every invitation to whoever reads the server log.
This backend writes each message to a file under EMAIL_FILE_PATH (var/mail) that only the
server's user can read, and says once per process, without any message content, that mail is
not being sent. Production sends through SMTP (EMAIL_URL)."""

import logging
import os
from collections.abc import Sequence
from typing import Any

from django.core.mail.backends import filebased
from django.core.mail.message import EmailMessage

logger = logging.getLogger(__name__)
_announced = False


class PrivateFileEmailBackend(filebased.EmailBackend):
    # Set by Django's file backend, absent from its stubs (which also call the stream text).
    file_path: str
    stream: Any

    def __init__(self, *args: Any, file_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, file_path=file_path, **kwargs)
        try:
            os.chmod(self.file_path, 0o700)
        except OSError:  # a folder someone else owns: the files are still created 0600
            pass

    def open(self) -> bool:
        if self.stream is None:
            filename = self._get_filename()  # type: ignore[attr-defined]  # Django's, absent from its stubs
            fd = os.open(filename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self.stream = os.fdopen(fd, "ab")
            return True
        return False

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        global _announced
        sent = super().send_messages(email_messages)
        if sent and not _announced:
            _announced = True
            logger.warning(
                "E-mail is not sent: messages are written to files in %s (set EMAIL_URL to send them through SMTP).",
                self.file_path,
            )
        return sent
