"""uacsta: an open-source uaCSTA (ECMA TR/87) server for SIP desk phones."""

__version__ = "0.1.0"
