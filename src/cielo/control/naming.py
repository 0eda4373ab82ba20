"""ARM's naming rules for the resources Cielo manages (ARM answers 400 for names that break them)."""

from __future__ import annotations

import re

from cielo.errors import (
    InvalidResourceGroupName,
    InvalidResourceName,
    LocationNotAvailableForResourceGroup,
    LocationRequired,
)
from cielo.rbac.scopes import fold

_RG = re.compile(r"^[-\w.()]{1,90}$")
_ACCOUNT = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{1,63}$")
_DEPLOYMENT = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,63}$")
_LOCATION = re.compile(r"^[a-zA-Z0-9 ]{1,64}$")


def check_case_unambiguous(path: str) -> None:
    """Refuse names with a non-ASCII letter that has a case (e.g. the Kelvin sign U+212A, which lower-cases to `k`).

    The store keys resources by `str.lower()` while RBAC folds ASCII letters only, so such a name would be one
    resource to the store and another scope to RBAC: an assignment at the Kelvin-sign spelling of `/resourceGroups/
    keep` would grant on the group `keep`. Refusing them keeps both views of an id the same.
    """
    if path.lower() != fold(path):
        raise InvalidResourceName(f"The resource path '{path}' has a non-ASCII letter with a case; such names are not "
                         "supported.")


def check_resource_group(name: str) -> None:
    if not _RG.match(name) or name.endswith("."):
        raise InvalidResourceGroupName(
            f"Resource group '{name}' could not be created: the name can include alphanumeric, underscore, "
            "parentheses, hyphen, period (except at end) and Unicode characters, up to 90 characters.",
        )


def check_account(name: str) -> None:
    if not _ACCOUNT.match(name):
        raise InvalidResourceName(
            f"The account name '{name}' is invalid: use 2 to 64 letters, digits and hyphens, starting with a "
            "letter or digit.")


def check_deployment(name: str) -> None:
    if not _DEPLOYMENT.match(name):
        raise InvalidResourceName(
            f"The deployment name '{name}' is invalid: use 2 to 64 letters, digits, '-', '_' and '.'.")


def normalize_location(location: object) -> str:
    if not isinstance(location, str) or not location.strip():
        raise LocationRequired("The location property is required for this definition.")
    if not _LOCATION.match(location.strip()):
        raise LocationNotAvailableForResourceGroup(f"The provided location '{location}' is not valid.")
    return location.strip().replace(" ", "").lower()
