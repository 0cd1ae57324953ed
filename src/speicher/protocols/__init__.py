"""Protocol adapters. SMB is Samba, managed; S3, WebDAV and SFTP come later over ShareFS."""
