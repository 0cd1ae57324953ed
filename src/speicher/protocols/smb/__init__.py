"""SMB: Speicher manages Samba's smbd."""

from speicher.protocols.smb.service import SmbService

__all__ = ["SmbService"]
