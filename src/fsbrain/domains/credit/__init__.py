"""Credit domain pack: loan-application anti-fraud (信贷进件反欺诈).

* :mod:`.schema` — the ``loan_application`` request model and :func:`to_event_data` (checks + pseudonymisation).
* :mod:`.identity` — GB/T 2260 region codes, mobile number attribution, card BIN issuers.
* :mod:`.simulator` — a labelled synthetic population of applications (``fsbrain simulate credit``).
"""

from fsbrain.domains.credit.identity import (
    CardInfo,
    PhoneInfo,
    Region,
    card_issuer,
    id_region,
    phone_attribution,
)
from fsbrain.domains.credit.schema import LoanApplication, parse_application, to_event_data

EVENT_TYPE = "loan_application"

__all__ = [
    "EVENT_TYPE",
    "CardInfo",
    "LoanApplication",
    "PhoneInfo",
    "Region",
    "card_issuer",
    "id_region",
    "parse_application",
    "phone_attribution",
    "to_event_data",
]
