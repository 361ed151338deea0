"""Stage 6, the plan: the campaign catalog (``campaigns``), triggers that turn it into occurrences,
coupons (``offers``), loyalty points, the ordered gates (``gates`` holds the rules, ``planner`` the one
pipeline every job plans and commits through), the send history the budget reads (``history``), and
the multi-day simulator. Imports profile, recommend, consent, ledger, data and the kernel.
"""
