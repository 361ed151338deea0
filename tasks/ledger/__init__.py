"""The send ledger: claim -> send -> mark, at most one send per idempotency key (``protocol``: the
claim, lease and UNKNOWN rules), on SQLite (one host) or DynamoDB (several). Planning reads it (a key
already sent is a duplicate) and delivery writes it, so it sits below both. Imports only the kernel.
"""
