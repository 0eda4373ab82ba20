"""The api-versions each resource provider's routes serve (`Route.api_versions`), newest first.

Each list is the provider's versions in Azure/azure-rest-api-specs (stable and preview) plus what ARM itself is
seen to accept (its InvalidApiVersionParameter messages list them, e.g. Azure/azure-cli#28038 for
Microsoft.Resources). Every version a real client sends must be in its list: azure-cli 2.91 (resources 2024-11-01,
subscriptions 2022-12-01, msi 2024-11-30, cognitiveservices 2026-05-15-preview), the azure-mgmt SDKs, `cielo` itself
(`cielo.cli.armcall.API_VERSIONS`) and the tests (2022-12-01 everywhere). Routes that name no list keep accepting
any date-shaped version.
"""

from __future__ import annotations


def _versions(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Microsoft.Resources: subscriptions, tenants, locations, providers, resource groups and resources (ARM answers one
# list for all of them).
RESOURCES = _versions("""
    2025-04-01 2025-03-01 2025-01-01 2024-11-01 2024-07-01 2024-03-01 2023-07-01 2023-07-01-preview
    2023-03-01-preview 2022-12-01 2022-11-01-preview 2022-09-01 2022-06-01 2022-05-01 2022-03-01-preview
    2022-01-01 2021-04-01 2021-01-01 2020-10-01 2020-09-01 2020-08-01 2020-07-01 2020-06-01 2020-05-01 2020-01-01
    2019-11-01 2019-10-01 2019-09-01 2019-08-01 2019-07-01 2019-06-01 2019-05-10 2019-05-01 2019-03-01 2018-11-01
    2018-09-01 2018-08-01 2018-07-01 2018-06-01 2018-05-01 2018-02-01 2018-01-01 2017-12-01 2017-08-01 2017-06-01
    2017-05-10 2017-05-01 2017-03-01 2016-09-01 2016-07-01 2016-06-01 2016-02-01 2015-11-01 2015-01-01
    2014-04-01-preview 2014-04-01 2014-01-01 2013-03-01 2014-02-26 2014-04
""")

# Microsoft.CognitiveServices (specification/cognitiveservices/…/Microsoft.CognitiveServices/{stable,preview}).
# azure-cli 2.91 pins none for it: it sends its azure-mgmt-cognitiveservices 15.0.0b4's default, 2026-05-15-preview
# (the SDK also knows 2026-03-15-preview and 2026-01-15-preview).
COGNITIVE_SERVICES = _versions("""
    2026-05-15-preview 2026-03-15-preview 2026-01-15-preview
    2025-10-01-preview 2025-09-01 2025-07-01-preview 2025-06-01 2025-04-01-preview 2024-10-01 2024-06-01-preview
    2024-04-01-preview 2023-10-01-preview 2023-05-01 2022-12-01 2022-10-01 2022-03-01 2021-10-01 2021-04-30
    2017-04-18 2016-02-01-preview
""")

# Microsoft.ManagedIdentity (specification/msi/…).
MANAGED_IDENTITY = _versions("""
    2025-05-31-preview 2025-01-31-preview 2024-11-30 2023-07-31-preview 2023-01-31 2022-01-31-preview
    2021-09-30-preview 2018-11-30 2015-08-31-preview
""")

# Microsoft.Web (specification/web/…/Microsoft.Web/{stable,preview}): geoRegions, functionAppStacks, serverfarms.
# azure-cli 2.91 sends 2025-05-01 (its azure-mgmt-web).
WEB = _versions("""
    2025-05-01 2025-03-01 2024-11-01 2024-04-01 2023-12-01 2023-01-01 2022-09-01 2022-03-01 2021-03-01 2021-02-01
    2021-01-15 2021-01-01 2020-12-01 2020-10-01 2020-09-01 2020-06-01 2019-08-01 2018-11-01 2018-02-01 2016-09-01
    2016-08-01 2016-03-01 2015-08-01
""")

# Microsoft.Storage (specification/storage/…/Microsoft.Storage/{stable,preview}): storage accounts.
STORAGE = _versions("""
    2025-08-01 2025-06-01 2025-01-01 2024-01-01 2023-05-01 2023-04-01 2023-01-01 2022-09-01 2022-05-01 2021-09-01
    2021-08-01 2021-06-01 2021-04-01 2021-02-01 2021-01-01 2020-08-01-preview 2019-06-01 2019-04-01 2018-11-01
    2018-07-01 2018-03-01-preview 2018-02-01 2017-10-01 2017-06-01 2016-12-01 2016-05-01 2016-01-01 2015-06-15
    2015-05-01-preview
""")


def newest_first(versions: frozenset[str]) -> list[str]:
    """Dates newest first, a preview after the stable version of the same date (as ARM lists them)."""
    return sorted(versions, key=lambda v: (v[:10], "preview" not in v), reverse=True)
