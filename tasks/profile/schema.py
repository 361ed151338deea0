"""The columns of the customer profile and their dtypes: light to import (segment checks need no Prefect)."""

from __future__ import annotations

# The full profile every segment and campaign reads: column -> pandas dtype. A segment expression may use
# any of these names (tasks/profile/expressions.py checks them at load).
PROFILE_DTYPES: dict[str, str] = {
    "customer_id": "string",
    "orders": "int64",
    "first_order_at": "datetime64[ns, UTC]",
    "last_order_at": "datetime64[ns, UTC]",
    "days_since_last_order": "Int64",
    "monetary_total": "float64",
    "avg_order_value": "Float64",
    "tenure_days": "Int64",
    "avg_interpurchase_days": "Float64",
    "r_score": "int64",
    "f_score": "int64",
    "m_score": "int64",
    "rfm_segment": "string",
    "lifecycle": "string",
    "p_alive": "Float64",
    "expected_purchases_90d": "Float64",
    "expected_order_value": "Float64",
    "predicted_clv": "Float64",
    "days_until_next_order": "Int64",
    "vip": "bool",
    "top_category": "string",
    "unhappy": "bool",
    "unhappy_reason": "string",
    "days_since_unhappy": "Int64",
    "days_until_birthday": "Int64",
    "has_birthday": "bool",  # the shop's data or the customer's preferences page gives a birth date
    "prediction_basis": "string",
    "email_opt_in": "bool",
    "sms_opt_in": "bool",
    "has_email": "bool",
    "has_phone": "bool",
    "locale": "string",
    "country": "string",
    "gender": "string",
    "pets": "string",  # cat | dog | none, as the customer said on their preferences page (missing: not said)
}
