"""Several nodes as one switching function, over NATS with JetStream (docs/cluster.md).

Nothing here is imported unless ``cluster.nats_url`` is set: ``nats-py`` is an optional
dependency (``pip install 'uacsta[cluster]'``)."""


class ClusterError(RuntimeError):
    """The cluster cannot be joined (NATS unreachable, JetStream off, nats-py missing)."""
