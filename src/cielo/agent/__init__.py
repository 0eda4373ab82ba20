"""The managed-identity host agent: IMDS and App Service token protocols on loopback."""
