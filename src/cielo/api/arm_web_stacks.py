"""The function app stacks Cielo lists (`GET /providers/Microsoft.Web/functionAppStacks`), in Azure's
`FunctionAppStack` shape (Azure/azure-rest-api-specs: specification/web/…/Microsoft.Web/stable/2024-04-01,
FunctionAppStacks.json): the runtimes az's `functionapp create --runtime` and `list-runtimes` choose from, with the
app settings (`FUNCTIONS_WORKER_RUNTIME`) and site configuration (`linuxFxVersion`) each puts on a site.

Every stack says Application Insights is not supported: Cielo serves no `Microsoft.Insights/components`, and az
then sets no instrumentation up (it would otherwise try to create one and fall back with a warning).
"""

from __future__ import annotations

from typing import Any

# runtime -> (display name, [(version, functions extension versions)], linux fx prefix, windows settings or None)
_RUNTIMES: dict[str, tuple[str, list[str], str, bool]] = {
    "python": ("Python", ["3.12", "3.11", "3.10"], "Python", False),
    "node": ("Node.js", ["22", "20"], "Node", True),
    "dotnet-isolated": (".NET Isolated", ["8.0"], "DOTNET-ISOLATED", True),
    "java": ("Java", ["17", "11"], "Java", True),
    "powershell": ("PowerShell Core", ["7.4"], "PowerShell", True),
}


def _settings(runtime: str, version: str, fx: str, linux: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "runtimeVersion": f"{fx}|{version}" if linux else version,
        "isPreview": False, "isDeprecated": False, "isHidden": False, "isDefault": False,
        "remoteDebuggingSupported": False,
        "appInsightsSettings": {"isSupported": False},
        "gitHubActionSettings": {"isSupported": False},
        "appSettingsDictionary": {"FUNCTIONS_WORKER_RUNTIME": runtime},
        "siteConfigPropertiesDictionary": ({"use32BitWorkerProcess": False, "linuxFxVersion": f"{fx}|{version}"}
                                           if linux else {"use32BitWorkerProcess": False}),
        "supportedFunctionsExtensionVersions": ["~4"],
    }
    return out


def function_app_stacks(os_type: str | None) -> list[dict[str, Any]]:
    """Each runtime's stack; `os_type` (Windows, Linux, All or None) keeps the settings of that system only."""
    wanted = (os_type or "all").lower()
    stacks = []
    for runtime, (display, versions, fx, windows) in _RUNTIMES.items():
        minors = []
        for version in versions:
            settings: dict[str, Any] = {}
            if wanted in ("all", "linux"):
                settings["linuxRuntimeSettings"] = _settings(runtime, version, fx, True)
            if windows and wanted in ("all", "windows"):
                settings["windowsRuntimeSettings"] = _settings(runtime, version, fx, False)
            if settings:
                minors.append({"displayText": f"{display} {version}", "value": version, "stackSettings": settings})
        if not minors:
            continue
        stacks.append({
            "id": None, "name": runtime, "type": "Microsoft.Web/functionAppStacks", "location": None,
            "properties": {"displayText": display, "value": runtime, "preferredOs": "linux",
                           "majorVersions": [{"displayText": display, "value": runtime, "minorVersions": minors}]},
        })
    return stacks
