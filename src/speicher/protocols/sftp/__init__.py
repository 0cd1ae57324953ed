"""SFTP (and scp, which speaks SFTP) over ShareFS: ``service.py`` runs the server,
``session.py`` answers a session's requests."""

from speicher.protocols.sftp.service import SftpService

__all__ = ["SftpService"]
