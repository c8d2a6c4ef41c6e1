//! The sign-in error-code catalogue: what an AADSTS code means and what to do about it.

use serde::Serialize;

use crate::status::is_interrupt;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorCodeInfo {
    pub code: i64,
    /// `AADSTS50126` style name.
    pub name: String,
    pub meaning: &'static str,
    pub remediation: &'static str,
    /// True when the code is an interrupt (the user was asked for something), not a failure.
    pub interrupt: bool,
    /// Where to read more (Microsoft's public error-code lookup).
    pub lookup_url: String,
}

/// (code, meaning, remediation)
const CATALOG: &[(i64, &str, &str)] = &[
    (0, "Success.", "Nothing to do."),
    (16000, "InteractionRequired: the user must pick an account or sign in again (several accounts are signed in, or the session ended).", "Usually benign: the user chose an account and continued. Investigate only when repeated without a following success."),
    (50011, "InvalidReplyTo: the reply URL in the request does not match the reply URLs registered for the application.", "Add the exact redirect URI to the app registration, or fix the URI the application sends."),
    (50034, "UserAccountNotFound: the account does not exist in the directory.", "Check the user name for typos and the tenant the user signs in to; repeated attempts with unknown names suggest enumeration or password spray."),
    (50053, "IdsLocked: the account is locked because of too many sign-in attempts with a wrong password, or sign-in came from a malicious IP address.", "Wait for the lockout to expire or unlock the account; investigate the source IP addresses for password spray; consider Smart Lockout thresholds."),
    (50055, "InvalidPasswordExpiredPassword: the password has expired.", "The user must change the password (self-service password reset or an administrator reset)."),
    (50057, "UserDisabled: the user account is disabled.", "Enable the account if the access is legitimate; otherwise treat attempts on a disabled account as suspicious."),
    (50058, "UserInformationNotProvided: session information is not sufficient for single sign-on (silent sign-in without a session).", "Interrupt, usually benign: the application retries interactively. Investigate only when never followed by a success."),
    (50072, "UserStrongAuthEnrollmentRequiredInterrupt: the user must register for multi-factor authentication.", "Interrupt: the user is asked to register MFA methods. Make sure registration completes (Authentication methods > Registration campaign)."),
    (50074, "UserStrongAuthClientAuthNRequiredInterrupt: strong authentication is required and the user did not pass the MFA challenge yet.", "Interrupt: the user is asked for MFA. Failures afterwards show as 500121."),
    (50076, "UserStrongAuthClientAuthNRequired: because of a configuration change or a new location, the user must use multi-factor authentication.", "Interrupt: the user is prompted for MFA. If it happens on every sign-in, review Conditional Access and the MFA session lifetime."),
    (50079, "UserStrongAuthEnrollmentRequired: because of a configuration change or a new location, the user must enrol in multi-factor authentication.", "Interrupt: the user must register MFA. Guide the user through registration."),
    (50097, "DeviceAuthenticationRequired: device authentication is required.", "Interrupt: the device must authenticate (hybrid-joined or registered device). Check device registration and the device's certificate."),
    (50125, "PasswordResetRegistrationRequiredInterrupt: sign-in was interrupted by a password reset or password registration entry.", "Interrupt: the user must register for self-service password reset. Completing registration resolves it."),
    (50126, "InvalidUserNameOrPassword: error validating credentials due to an invalid user name or password.", "The user entered a wrong password. Many 50126 failures across users from one IP address indicate password spray: block the IP, enforce MFA, check for compromised accounts."),
    (50140, "KmsiInterrupt: the 'Keep me signed in' prompt interrupted the sign-in.", "Interrupt, benign: the user answered the 'Stay signed in?' prompt."),
    (50158, "ExternalSecurityChallenge: an external security challenge (for example a third-party MFA or Conditional Access custom control) was not yet satisfied.", "Interrupt: the user is redirected to the external provider. Check that provider if sign-ins never complete."),
    (50173, "FreshTokenNeeded: the provided grant has expired because it was revoked; a fresh token is needed (for example after a password change).", "The user must sign in again. Expected after password changes or token revocation."),
    (53000, "DeviceNotCompliant: Conditional Access requires a compliant device, and the device is not compliant.", "Have the user enrol the device in Intune (or your MDM) and bring it into compliance; check which policy required it in the Conditional Access tab."),
    (53003, "BlockedByConditionalAccess: access has been blocked by Conditional Access policies.", "Open the Conditional Access details of the sign-in to see which policy blocked it; adjust the policy or the user's situation (location, device, app)."),
    (530032, "BlockedByConditionalAccessOnSecurityPolicy: the tenant's security policy blocked the sign-in (for example security defaults or a policy for the directory).", "Review security defaults and tenant-wide security policies that apply to the user."),
    (500121, "AuthenticationFailedDueToMfa: authentication failed during the strong authentication request (MFA was denied, timed out or failed).", "Ask the user whether they denied the prompt; repeated unexpected MFA prompts may mean the password is compromised (MFA fatigue attack)."),
    (65001, "DelegationDoesNotExist: the user or administrator has not consented to use the application.", "Grant consent for the application (admin consent for the tenant, or the user consents interactively)."),
    (70008, "ExpiredOrRevokedGrant: the refresh token has expired or was revoked due to inactivity.", "The user must sign in again interactively. Expected after long inactivity or token revocation."),
    (70043, "BadTokenDueToSignInFrequency: the refresh token has expired or is invalid due to sign-in frequency checks by Conditional Access.", "Expected when a sign-in frequency policy applies: the user signs in again."),
    (700016, "UnauthorizedClient_DoesNotMatchRequest: the application was not found in the directory or tenant.", "Check the application (client) id and the tenant the app signs in to; the app may not be installed or may have been deleted."),
    (7000215, "InvalidClientSecretProvided: an invalid client secret was provided.", "Use the secret's value (not its id), and check that the secret has not expired; rotate it in the app registration."),
    (7000218, "InvalidClientAuthentication: the request body must contain client_assertion or client_secret.", "Configure the client credential (secret or certificate) in the calling application."),
    (81010, "DesktopSsoAuthTokenInvalid: Seamless SSO failed because the user's Kerberos ticket has expired or is invalid.", "Interrupt: the user falls back to a password prompt. Check the AZUREADSSOACC computer account's Kerberos key rollover."),
    (90072, "PassThroughUserMfaError: the external account the user signs in with does not exist in the tenant; the user must be added as an external user first.", "Invite the user to the tenant as a guest (B2B), or have them sign in with an account of this tenant."),
    (90095, "AdminConsentRequired: an administrator must consent to the application.", "An administrator grants consent, or enables the admin consent workflow."),
    (50020, "UserUnauthorized: the user account from an identity provider does not exist in the tenant.", "Invite the external user to the tenant, or check which tenant the application signs in to."),
    (50056, "Invalid or null password: the password does not exist in the directory for this user.", "The user should set a password (self-service password reset), or use another sign-in method."),
    (50059, "MissingTenantRealmAndNoUserInformationProvided: the tenant could not be determined from the request.", "The application must send a tenant-specific authority or a user hint."),
    (50105, "EntitlementGrantsNotFound: the signed-in user is not assigned to a role for the application.", "Assign the user (or a group) to the application, or turn off 'Assignment required'."),
    (50133, "SsoArtifactInvalidOrExpired: the session is not valid because the password expired or was changed recently.", "The user signs in again with the new password."),
    (50144, "InvalidPasswordExpiredOnPremPassword: the user's Active Directory password has expired.", "The user changes the on-premises password, or an administrator resets it."),
    (51004, "UserAccountNotInDirectory: the user account does not exist in the directory.", "Check the user name and the tenant."),
    (53001, "DeviceNotDomainJoined: Conditional Access requires a domain-joined device, and the device is not.", "Use a hybrid Azure AD joined device, or adjust the policy."),
    (53002, "ApplicationUsedIsNotAnApprovedApp: the application used is not approved for Conditional Access.", "Use an approved client app (for example Outlook mobile) as the policy requires."),
    (53004, "ProofUpBlockedDueToRisk: the user must complete MFA registration, but the registration is blocked because of risk.", "Remediate the user's risk (reset password, dismiss risk) before registration."),
    (54005, "OAuth2 authorization code was already redeemed.", "The application must request a new authorization code; look for replay attempts."),
    (50199, "CmsiInterrupt: for security reasons, user confirmation is required for this request.", "Interrupt, benign: the user confirms the app."),
    (50203, "Interrupt: the user must register the Microsoft Authenticator app.", "Interrupt: the user registers the authenticator."),
    (50012, "AuthenticationFailed: a token or assertion failed its checks (signature, issuer, audience, lifetime or nonce), or the identity provider reported an error.", "Read the failure reason: a clock difference, a rotated signing key or a wrong issuer / client id in the configuration are the usual causes; a forged or replayed token is the unusual one."),
    (65004, "UserDeclinedToConsent: the user declined to consent, or the identity provider denied access.", "Ask the user whether they cancelled; check the application's assignment at the identity provider."),
    (9002313, "InvalidRequest: the request is malformed or invalid (for example a sign-in answer that matches no sign-in started by this browser).", "Usually a bookmarked or reused sign-in link, or a sign-in left open too long: start again. Many of them from one address may be a login CSRF attempt."),
    (81012, "The user trying to sign in to Azure AD is different from the user signed in to the device (Seamless SSO).", "Interrupt: the user signs in with the device's account, or with a password."),
];

/// Looks up a code; unknown codes get a generic entry so callers always have something to show.
pub fn lookup(code: i64) -> Option<ErrorCodeInfo> {
    CATALOG.iter().find(|(c, _, _)| *c == code).map(|&(code, meaning, remediation)| info(code, meaning, remediation))
}

/// Every catalogued code, ascending.
pub fn all() -> Vec<ErrorCodeInfo> {
    let mut entries: Vec<_> = CATALOG.iter().map(|&(c, m, r)| info(c, m, r)).collect();
    entries.sort_by_key(|e| e.code);
    entries
}

fn info(code: i64, meaning: &'static str, remediation: &'static str) -> ErrorCodeInfo {
    ErrorCodeInfo {
        code,
        name: format!("AADSTS{code}"),
        meaning,
        remediation,
        interrupt: is_interrupt(code),
        lookup_url: format!("https://login.microsoftonline.com/error?code={code}"),
    }
}

/// Parses `50126` or `AADSTS50126`.
pub fn parse_code(text: &str) -> Option<i64> {
    let t = text.trim();
    let digits = t.strip_prefix("AADSTS").or_else(|| t.strip_prefix("aadsts")).unwrap_or(t);
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_codes_are_catalogued() {
        for code in [
            50126, 50053, 50055, 50057, 50058, 50072, 50074, 50076, 50079, 50097, 50125, 50140, 50158, 50173, 53000,
            53003, 530032, 65001, 70008, 70043, 700016, 7000215, 81010, 90072, 16000, 50034, 50011, 500121,
        ] {
            let entry = lookup(code).unwrap_or_else(|| panic!("{code} missing"));
            assert!(!entry.meaning.is_empty() && !entry.remediation.is_empty());
        }
        assert!(lookup(50074).unwrap().interrupt);
        assert!(!lookup(50126).unwrap().interrupt);
        assert!(lookup(12345678).is_none());
    }

    #[test]
    fn codes_are_unique_and_parse() {
        let all = all();
        let mut codes: Vec<_> = all.iter().map(|e| e.code).collect();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert_eq!(parse_code("AADSTS50126"), Some(50126));
        assert_eq!(parse_code(" 53003 "), Some(53003));
        assert_eq!(parse_code("x"), None);
    }
}
