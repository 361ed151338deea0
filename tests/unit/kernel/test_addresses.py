"""``ascii_address`` answers a plain address from its domain's cached result: always what email_validator says."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tasks.kernel.addresses import ascii_address, validated_address

# the parts addresses are made of, the awkward ones included: quotes, brackets, dots in a row, role names,
# IDN and punycode domains, special-use names, long labels, spaces, non-ASCII local parts
LOCALS = st.one_of(
    st.sampled_from(["anna", "Ivan.Petrov", "a+tag", "INFO", "Sales", "postmaster", "o'brien", "x", "a.", ".a"]),
    st.sampled_from(['"quoted"', '"a@b"', "a..b", "иван", "zoë", "a b", "<a", "a>", "名"]),
    st.text(alphabet="abcXYZ019.+-_'!#~\"@ ", min_size=0, max_size=12),
    st.text(alphabet="a", min_size=60, max_size=70),  # around the 64-octet local part
)
DOMAINS = st.one_of(
    st.sampled_from(["gmail.com", "Shop.PL", "Магазин.РФ", "xn--80aairftm.xn--p1ai", "mail.ru", "example.com"]),
    st.sampled_from(["localhost", "x.test", "a.invalid", "-x.com", "x-.com", "x..com", ".x.com", "x.com.", "x"]),
    st.sampled_from(["1.2.3.4", "[1.2.3.4]", "x.c0m", "xn--zz.com", "bücher.de", "ex_ample.com", "EXAMPLE.COM"]),
    st.text(alphabet="abz09-.", min_size=1, max_size=20),
    st.builds(lambda n: ".".join(["a" * 63] * n) + ".com", st.integers(1, 4)),  # around the 254-octet address
)


@settings(max_examples=3000, deadline=None)
@given(local=LOCALS, domain=DOMAINS, pad=st.sampled_from(["", " ", "\t"]))
@example(local="info", domain="Shop.COM", pad="")
@example(local="a" * 64, domain=".".join(["b" * 63] * 3) + ".com", pad="")
@example(local="Ivan", domain="Магазин.РФ", pad=" ")
def test_the_fast_answer_is_email_validators_answer(local: str, domain: str, pad: str) -> None:
    address = f"{pad}{local}@{domain}{pad}"
    assert ascii_address(address) == validated_address(address.strip())


@given(st.text(max_size=40))
def test_any_text_gets_email_validators_answer(text: str) -> None:
    assert ascii_address(text) == (validated_address(text.strip()) if text.strip() else None)


def test_a_plain_address_keeps_its_local_part_and_lowers_its_domain() -> None:
    assert ascii_address(" Anna.K+news@Shop.PL ") == "Anna.K+news@shop.pl"
    assert ascii_address("Ivan@Магазин.РФ") == "Ivan@xn--80aairftm.xn--p1ai"
    assert ascii_address("Info@shop.pl") == "info@shop.pl"  # RFC 2142 role names are case-insensitive
    assert ascii_address("anna@localhost") is None
    assert ascii_address("иван@shop.pl") is None
