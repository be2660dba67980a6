"""Calls after the fact: the call journal (persistent rows) and webhook delivery (a durable,
signed, retried outbox). The call tracker (:mod:`uacsta.switch.calls`) produces what both keep."""
