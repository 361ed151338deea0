"""Shared state that decides who may be contacted, on one backend for every host (``backend``).

Suppressions, send history (the budget's and the pause's memory), the coupon registry and watermarks:
``protocol`` says what each store does, ``sqlite`` keeps them in files in the state folder (one host,
the default), ``dynamodb`` in one DynamoDB table (several hosts). ``LOYALTY_STATE_BACKEND`` chooses; the
send ledger (``tasks/ledger``) follows the same switch. Stores hold hashes and ids, never an address.
Imports only the kernel.
"""
