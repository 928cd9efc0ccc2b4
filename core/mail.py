"""The embedded default e-mail backend: messages go to files, never to the log.

Invitation e-mails carry a link that joins the organisation with the invited role (admin
included), so a console backend would hand every invitation to whoever reads the server log.
This backend writes each message to a file under EMAIL_FILE_PATH (var/mail) that only the
server's user can read, and says once per process, without any message content, that mail is
not being sent. Production sends through SMTP (EMAIL_URL)."""

import logging
import os

from django.core.mail.backends import filebased

logger = logging.getLogger(__name__)
_announced = False


class PrivateFileEmailBackend(filebased.EmailBackend):
    def __init__(self, *args, file_path=None, **kwargs):
        super().__init__(*args, file_path=file_path, **kwargs)
        try:
            os.chmod(self.file_path, 0o700)
        except OSError:  # a folder someone else owns: the files are still created 0600
            pass

    def open(self):
        if self.stream is None:
            fd = os.open(self._get_filename(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self.stream = os.fdopen(fd, "ab")
            return True
        return False

    def send_messages(self, email_messages):
        global _announced
        sent = super().send_messages(email_messages)
        if sent and not _announced:
            _announced = True
            logger.warning(
                "E-mail is not sent: messages are written to files in %s (set EMAIL_URL to send them through SMTP).",
                self.file_path,
            )
        return sent
