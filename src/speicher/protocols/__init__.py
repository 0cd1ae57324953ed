"""Protocol adapters. SMB is Samba, managed; WebDAV is wsgidav over ShareFS; S3 and SFTP come
later over ShareFS."""
