//! Sign-in status, derived from `status.errorCode` as the Entra sign-in log does.

use serde::{Deserialize, Serialize};

/// Error codes that mean "the user was interrupted" (asked for MFA, to keep signed in, to
/// register, ...) rather than "the sign-in failed".
pub const INTERRUPT_CODES: &[i64] =
    &[16000, 50058, 50072, 50074, 50076, 50079, 50097, 50125, 50140, 50158, 50203, 50199, 81010, 81012];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SignInStatus {
    Success,
    Failure,
    Interrupted,
}

impl SignInStatus {
    pub fn from_error_code(code: i64) -> SignInStatus {
        if code == 0 {
            SignInStatus::Success
        } else if is_interrupt(code) {
            SignInStatus::Interrupted
        } else {
            SignInStatus::Failure
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SignInStatus::Success => "success",
            SignInStatus::Failure => "failure",
            SignInStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(text: &str) -> Option<SignInStatus> {
        match text.to_ascii_lowercase().as_str() {
            "success" | "succeeded" => Some(SignInStatus::Success),
            "failure" | "failed" => Some(SignInStatus::Failure),
            "interrupted" | "interrupt" => Some(SignInStatus::Interrupted),
            _ => None,
        }
    }
}

pub fn is_interrupt(code: i64) -> bool {
    INTERRUPT_CODES.contains(&code)
}

/// Client apps using modern authentication; everything else Entra calls a legacy client.
pub const MODERN_CLIENT_APPS: &[&str] = &["Browser", "Mobile Apps and Desktop clients"];

/// The client apps Entra lists under "Legacy authentication clients".
pub const LEGACY_CLIENT_APPS: &[&str] = &[
    "Exchange ActiveSync",
    "Exchange Online PowerShell",
    "Exchange Web Services",
    "IMAP4",
    "MAPI Over HTTP",
    "Offline Address Book",
    "Outlook Anywhere (RPC over HTTP)",
    "Other clients",
    "POP3",
    "Reporting Web Services",
    "Authenticated SMTP",
    "AutoDiscover",
    "Universal Outlook",
];

pub fn is_legacy_client(client_app: &str) -> bool {
    !client_app.is_empty() && !MODERN_CLIENT_APPS.iter().any(|m| m.eq_ignore_ascii_case(client_app))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_from_codes() {
        assert_eq!(SignInStatus::from_error_code(0), SignInStatus::Success);
        for code in [50058, 50072, 50074, 50076, 50079, 50097, 50125, 50140, 50158, 16000] {
            assert_eq!(SignInStatus::from_error_code(code), SignInStatus::Interrupted, "{code}");
        }
        assert_eq!(SignInStatus::from_error_code(50126), SignInStatus::Failure);
        assert_eq!(SignInStatus::from_error_code(-1), SignInStatus::Failure);
    }

    #[test]
    fn legacy_clients() {
        assert!(!is_legacy_client("Browser"));
        assert!(!is_legacy_client("Mobile Apps and Desktop clients"));
        assert!(is_legacy_client("IMAP4"));
        assert!(!is_legacy_client(""));
    }
}
