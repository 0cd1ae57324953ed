"""WebDAV (RFC 4918, classes 1 and 2) at ``/dav``: wsgidav over ShareFS (docs/webdav.md)."""
