"""Stage 7a, rendering: Jinja2 templates in a sandbox (``templating``), a plan shard composed into
messages with coupons, products and signed links (``compose``), the name a message addresses its
customer by (``names``: the Polish vocative), SMS parts (``sms``), the outbox files, and the
catalog check that renders every campaign's sample. Imports plan and below.
"""
