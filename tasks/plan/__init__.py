"""Stage 6, the plan: the campaign catalog (``campaigns``), triggers that turn it into occurrences,
coupons (``offers``), loyalty points, the ordered gates (``gates`` holds the rules, ``planner`` the one
pipeline every job plans and commits through; ``waves`` reads a committed plan's waves back), the send history the budget reads (``history``), filtered
replays that hold back what a backfill leaves out (``replay``), and the multi-day simulator. Imports profile,
recommend, consent, ledger, state, data and the kernel.
"""
