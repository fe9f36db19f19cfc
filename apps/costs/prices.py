"""The seeded instance-type catalog: Azure VM sizes with list prices (USD per hour, Linux, pay-as-you-go).

Prices are editable in the studio; these are the starting values.
"""

from __future__ import annotations

# name, vCPUs, memory GiB, GPUs, GPU model, price per hour
CATALOG: list[tuple[str, int, str, int, str, str]] = [
    ("Standard_DS1_v2", 1, "3.5", 0, "", "0.0730"),
    ("Standard_DS2_v2", 2, "7", 0, "", "0.1460"),
    ("Standard_DS3_v2", 4, "14", 0, "", "0.2930"),
    ("Standard_DS4_v2", 8, "28", 0, "", "0.5850"),
    ("Standard_DS5_v2", 16, "56", 0, "", "1.1700"),
    ("Standard_F2s_v2", 2, "4", 0, "", "0.0846"),
    ("Standard_F4s_v2", 4, "8", 0, "", "0.1690"),
    ("Standard_F8s_v2", 8, "16", 0, "", "0.3380"),
    ("Standard_F16s_v2", 16, "32", 0, "", "0.6770"),
    ("Standard_E2s_v3", 2, "16", 0, "", "0.1260"),
    ("Standard_E4s_v3", 4, "32", 0, "", "0.2520"),
    ("Standard_E8s_v3", 8, "64", 0, "", "0.5040"),
    ("Standard_E16s_v3", 16, "128", 0, "", "1.0080"),
    ("Standard_NC4as_T4_v3", 4, "28", 1, "T4", "0.5260"),
    ("Standard_NC8as_T4_v3", 8, "56", 1, "T4", "0.7520"),
    ("Standard_NC16as_T4_v3", 16, "110", 1, "T4", "1.2040"),
    ("Standard_NC6s_v3", 6, "112", 1, "V100", "3.0600"),
    ("Standard_NC12s_v3", 12, "224", 2, "V100", "6.1200"),
    ("Standard_NC24ads_A100_v4", 24, "220", 1, "A100", "3.6730"),
]
