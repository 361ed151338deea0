"""Shared state that decides who may be contacted, on one backend for every host (``backend``).

Suppressions, send history (the budget's and the pause's memory), the coupon registry and watermarks:
``protocol`` says what each store does, ``sqlite`` keeps them in files in the state folder (one host,
the default), ``dynamodb`` in one DynamoDB table (several hosts). ``LOYALTY_STATE_BACKEND`` chooses; the
send ledger (``tasks/ledger``) follows the same switch. Stores hold hashes and ids, never an address.
Survey answers (``surveys``: scores and customers' comments, standard library only for the Lambda) and
the daily run's copy of them for the profile (``survey_snapshot``, which reads the profile's file names).
Customers' preferences (``preferences``: what they set on their preferences page, standard library only) and
the daily run's merge of them into the day's snapshot (``preference_snapshot``: facts into the customers
table, choices for the planner). Imports the kernel (and, for those copies, the data and profile stages).
"""
