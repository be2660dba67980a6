"""HTTP: the JSON API, the web admin, the web client, provisioning and metrics (Starlette)."""
