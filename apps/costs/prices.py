"""List prices of the seeded instance-type catalog (apps/endpoints/catalog.py): USD per hour, Linux,
pay-as-you-go, from Azure's price list.

Prices are editable in the studio (`InstancePrice`); these are the starting values.
"""

from __future__ import annotations

LIST_PRICES: dict[str, str] = {
    "Standard_DS1_v2": "0.0730",
    "Standard_DS2_v2": "0.1460",
    "Standard_DS3_v2": "0.2930",
    "Standard_DS4_v2": "0.5850",
    "Standard_DS5_v2": "1.1700",
    "Standard_F2s_v2": "0.0846",
    "Standard_F4s_v2": "0.1690",
    "Standard_F8s_v2": "0.3380",
    "Standard_F16s_v2": "0.6770",
    "Standard_E2s_v3": "0.1260",
    "Standard_E4s_v3": "0.2520",
    "Standard_E8s_v3": "0.5040",
    "Standard_E16s_v3": "1.0080",
    "Standard_NC4as_T4_v3": "0.5260",
    "Standard_NC8as_T4_v3": "0.7520",
    "Standard_NC16as_T4_v3": "1.2040",
    "Standard_NC6s_v3": "3.0600",
    "Standard_NC12s_v3": "6.1200",
    "Standard_NC24ads_A100_v4": "3.6730",
}
