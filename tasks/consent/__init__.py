"""Consent state and its faces: the suppression list (bounces, complaints, unsubscribes, by address
hash and customer id), the shop's signing secret with one derived key per purpose (links, coupon
codes, address hashes; rotation), the one-click unsubscribe endpoint with the survey and preferences
pages (``preferences_page``), and the SES/SNS feedback
processor (allowed SNS topics only). Imports the state backend (``tasks.state``, where the list is kept) and
the kernel.
"""
