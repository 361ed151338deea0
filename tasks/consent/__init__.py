"""Consent state and its faces: the suppression list (bounces, complaints, unsubscribes, by address
hash and customer id), HMAC-signed tokens for links, the one-click unsubscribe endpoint, and the
SES/SNS feedback processor. Imports only the kernel.
"""
