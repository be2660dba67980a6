"""Phone provisioning: per-vendor configuration files (estos manual §3.5.1).

:mod:`uacsta.provisioning.templates` holds the pure generators; the HTTP endpoint that
serves them to phones and the admin page live in :mod:`uacsta.web.provisioning`.
"""

from uacsta.provisioning.templates import (
    FORMATS,
    VENDORS,
    FileRequest,
    Format,
    PhoneParams,
    ProvisioningError,
    ProvisioningFile,
    UnknownFile,
    formats_for_vendor,
    generate,
    generate_for_vendor,
    mac_of_filename,
    password_for,
    port_for,
    resolve_filename,
)

__all__ = [
    "FORMATS",
    "VENDORS",
    "FileRequest",
    "Format",
    "PhoneParams",
    "ProvisioningError",
    "ProvisioningFile",
    "UnknownFile",
    "formats_for_vendor",
    "generate",
    "generate_for_vendor",
    "mac_of_filename",
    "password_for",
    "port_for",
    "resolve_filename",
]
