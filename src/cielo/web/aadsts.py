"""What each AADSTS code Cielo's token service answers means, for the page its OAuth errors link to
(`error_uri`: `{base_url}/error?code=…`). The wording follows Microsoft's public list of Entra error codes
(learn.microsoft.com, "Microsoft Entra authentication and authorization error codes")."""

from __future__ import annotations

CODES: dict[int, tuple[str, str]] = {
    50000: ("TokenIssuanceError", "The token service could not issue a token. Try again; if it persists, look at the "
                                  "server's log for this request."),
    500011: ("InvalidResourceServicePrincipalNotFound", "The resource (audience) named in the request was not found "
                                                        "in the tenant."),
    50011: ("InvalidReplyTo", "The redirect URI in the request does not match any redirect URI registered for the "
                              "application."),
    50020: ("UserUnauthorized", "The user account is not a member of the tenant the application asked for."),
    50027: ("InvalidJwtToken", "The client assertion (a JWT) is malformed, expired, or signed with an unknown key."),
    50034: ("UserAccountNotFound", "The user account does not exist in the directory."),
    50053: ("IdsLocked", "The account is locked after too many failed sign-ins, or sign-ins from this address are "
                         "throttled. Wait and try again."),
    50057: ("UserDisabled", "The user account is disabled."),
    50058: ("UserInformationNotProvided", "A silent sign-in was requested (prompt=none) but no user is signed in."),
    50059: ("MissingTenantRealmAndNoUserInformationProvided", "The request names no tenant and the token service "
                                                           "could not infer one."),
    50126: ("InvalidUserNameOrPassword", "The user name or password is incorrect."),
    50148: ("PKCE mismatch", "The code_verifier does not match the code_challenge of the authorization request."),
    501481: ("InvalidCodeVerifier", "The code_verifier does not match the code_challenge of the authorization "
                                    "request."),
    501491: ("InvalidCodeChallengeMethod", "The code_challenge_method must be S256 or plain."),
    50173: ("FreshTokenNeeded", "The grant was revoked (a refresh token redeemed twice, a password reset, or a "
                                "sign-out). Sign in again."),
    54005: ("OAuth2AuthorizationCodeAlreadyRedeemed", "The authorization code was already redeemed. Start the sign-in "
                                                      "again."),
    70000: ("InvalidGrant", "The grant is invalid: issued to another client, expired, or malformed."),
    700016: ("UnauthorizedClient_DoesNotMatchRequest", "The application was not found in the directory (tenant)."),
    7000215: ("InvalidClientSecretProvided", "The client secret is wrong. Send the secret's value, not its id."),
    7000218: ("InvalidClientCredential", "The request needs a client credential (client_secret or "
                                         "client_assertion)."),
    7000222: ("InvalidClientSecretExpiredKeysProvided", "The client secret has expired. Add a new one."),
    7000229: ("MissingServicePrincipal", "The application has no service principal in the tenant: create one "
                                         "(enterprise application)."),
    700025: ("InvalidClientPublicClientWithCredential", "A public client (such as the Azure CLI) must not send a "
                                                        "client secret or assertion."),
    70003: ("UnsupportedGrantType", "The grant_type is not supported."),
    700054: ("ResponseTypeNotEnabled", "The response_type must be 'code'."),
    70008: ("ExpiredOrRevokedGrant", "The authorization code or refresh token has expired or was revoked. Sign in "
                                     "again."),
    700082: ("ExpiredOrRevokedGrantInactiveToken", "The refresh token has expired through inactivity. Sign in "
                                                   "again."),
    70011: ("InvalidScope", "The scope is invalid: one resource per request, with /.default or named scopes."),
    70016: ("AuthorizationPending", "The user has not finished the device-code sign-in yet. Keep polling."),
    70019: ("CodeExpired", "The device code expired. Start again."),
    70021: ("NoMatchedAuthorizationPolicy", "No federated credential of the application matches the assertion's "
                                            "issuer, subject and audience."),
    700211: ("NoMatchingFederatedIdentityCredential", "No federated credential of the application matches the "
                                                      "assertion's issuer."),
    90002: ("InvalidTenantName", "The tenant was not found. Check the tenant id or domain in the authority URL."),
    900144: ("InvalidParameter", "A required parameter is missing from the request."),
    9002313: ("InvalidRequest", "The request is malformed or invalid (for example a malformed refresh token)."),
    1002012: ("InvalidScope", "The scope is not valid for this request."),
}
