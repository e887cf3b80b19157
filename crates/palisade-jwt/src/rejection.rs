//! Why a token was refused.

use std::fmt;

/// Why a request's token did not verify, or that it had none.
///
/// Each kind has a stable [`code`](Self::code) for logs and metrics and a
/// [`description`](Self::description) for problem responses; neither
/// repeats anything from the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// None of the configuration's sources carried a token.
    Missing,
    /// The token is larger than the configuration allows; it was not parsed.
    Oversized,
    /// Not three dot-separated parts.
    Malformed,
    /// A part is not unpadded base64url.
    BadBase64,
    /// The header or the payload is not a JSON object.
    BadJson,
    /// The header names `none` or an algorithm this layer does not verify.
    UnsupportedAlgorithm,
    /// The token has no `kid`, or one that no key of the configuration has.
    UnknownKey,
    /// The key named by `kid` is for another algorithm than the header's
    /// `alg` (such as HS256 presented against an RSA key).
    AlgorithmMismatch,
    /// The signature does not match the header and payload.
    BadSignature,
    /// `exp` is in the past, beyond the leeway.
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    NotYetValid,
    /// A required claim is absent, or `exp`/`nbf` is not a number.
    MissingClaim,
    /// `iss` is not one of the accepted issuers.
    WrongIssuer,
    /// `aud` names none of the accepted audiences.
    WrongAudience,
}

impl RejectionKind {
    /// A stable snake_case code, such as `expired` or `unknown_key`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Oversized => "oversized",
            Self::Malformed => "malformed",
            Self::BadBase64 => "bad_base64",
            Self::BadJson => "bad_json",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::AlgorithmMismatch => "algorithm_mismatch",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingClaim => "missing_claim",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
        }
    }

    /// A sentence for the client, without anything from the token.
    pub fn description(self) -> &'static str {
        match self {
            Self::Missing => "the request carries no token",
            Self::Oversized => "the token is larger than accepted",
            Self::Malformed => "the token is not three dot-separated parts",
            Self::BadBase64 => "a part of the token is not base64url",
            Self::BadJson => "the token's header or payload is not a JSON object",
            Self::UnsupportedAlgorithm => "the token's algorithm is not accepted",
            Self::UnknownKey => "the token names no known key",
            Self::AlgorithmMismatch => "the token's algorithm does not match its key",
            Self::BadSignature => "the token's signature does not verify",
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet",
            Self::MissingClaim => "the token lacks a required claim",
            Self::WrongIssuer => "the token's issuer is not accepted",
            Self::WrongAudience => "the token is not meant for this audience",
        }
    }

    /// Whether a token was present (anything but [`Missing`](Self::Missing)).
    pub fn is_invalid(self) -> bool {
        self != Self::Missing
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// Why the JWT layer refused or flagged a request.
///
/// A blocked request's 401 response carries it in its extensions; a request
/// let through under a `log` action carries it in the request's extensions,
/// so the application (or the learning layer) can see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JwtRejection {
    pub(crate) config: &'static str,
    pub(crate) kind: RejectionKind,
}

impl JwtRejection {
    /// The token configuration that refused the request.
    pub fn config(&self) -> &'static str {
        self.config
    }

    /// Why.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }
}

impl fmt::Display for JwtRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (token configuration {})", self.kind, self.config)
    }
}

impl std::error::Error for JwtRejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        use RejectionKind::*;
        let all = [
            Missing,
            Oversized,
            Malformed,
            BadBase64,
            BadJson,
            UnsupportedAlgorithm,
            UnknownKey,
            AlgorithmMismatch,
            BadSignature,
            Expired,
            NotYetValid,
            MissingClaim,
            WrongIssuer,
            WrongAudience,
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), all.len());
        assert!(!Missing.is_invalid() && Expired.is_invalid());
        let rejection = JwtRejection {
            config: "auth0",
            kind: Expired,
        };
        assert_eq!(
            rejection.to_string(),
            "the token has expired (token configuration auth0)"
        );
    }
}
