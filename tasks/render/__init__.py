"""Stage 7a, rendering: Jinja2 templates in a sandbox (``templating``), a plan shard composed into
messages with coupons, products and signed links (``compose``), the name a message addresses its
customer by (``names``: the Polish vocative), SMS parts (``sms``), an ad-hoc email's own Markdown words,
sanitised into the layout (``markdown_copy``), the outbox files (a sample of each shard: ``outbox``), and the
catalog check that renders every campaign's sample. The HTML's CSS is inlined once per distinct markup
(``inlining``); the plan's shards render in worker processes, one task run each (``workers``).
Imports plan and below.
"""
