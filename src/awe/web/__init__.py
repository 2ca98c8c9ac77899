"""The browser side of awe: server-rendered pages (for now, the first admin's setup page)."""
