"""Stage 7b, delivery: rendered shards through the ledger to the channels (SES email, SNS SMS), with
a token bucket per channel, backoff, quota parking and the kill switch. Imports render, plan, the
ledger, consent and the kernel.
"""
