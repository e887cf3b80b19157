//! Configuration errors.

use std::error::Error;
use std::fmt;

/// A configuration that cannot be built; each variant names the bad input.
///
/// These are returned when a layer is built, never while it serves requests.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A header name that is not a valid HTTP field name.
    InvalidHeaderName {
        /// The name as given.
        name: String,
    },
    /// A cookie name that is not an RFC 6265 token.
    InvalidCookieName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More session identifiers than allowed.
    TooManyIdentifiers {
        /// How many were given.
        given: usize,
        /// How many are allowed.
        max: usize,
    },
    /// A JSON path that is not a plain path such as `$.user.id`.
    InvalidJsonPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An identifier or configuration id that is empty or malformed.
    InvalidName {
        /// What the name is for, such as "token configuration id".
        what: &'static str,
        /// The name as given.
        name: String,
    },
    /// An HTTP method that cannot be parsed.
    InvalidMethod {
        /// The method as given.
        method: String,
    },
    /// A host pattern that is neither a host nor `*.` followed by a host.
    InvalidHostPattern {
        /// The pattern as given.
        pattern: String,
    },
    /// A path template that the router refuses.
    InvalidTemplate {
        /// The template as given.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value that must be positive was zero or out of range.
    OutOfRange {
        /// The setting.
        what: &'static str,
        /// The value as given.
        value: String,
    },
    /// Any other invalid setting, named with what is wrong.
    Invalid {
        /// The setting.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidHeaderName { name } => {
                write!(f, "invalid header name {name:?}: not an HTTP field name")
            }
            Self::InvalidCookieName { name, reason } => {
                write!(f, "invalid cookie name {name:?}: {reason}")
            }
            Self::TooManyIdentifiers { given, max } => {
                write!(
                    f,
                    "{given} session identifiers given, at most {max} allowed"
                )
            }
            Self::InvalidJsonPath { path, reason } => {
                write!(f, "invalid JSON path {path:?}: {reason}")
            }
            Self::InvalidName { what, name } => write!(f, "invalid {what} {name:?}"),
            Self::InvalidMethod { method } => write!(f, "invalid HTTP method {method:?}"),
            Self::InvalidHostPattern { pattern } => write!(
                f,
                "invalid host pattern {pattern:?}: use a host name or `*.` followed by one"
            ),
            Self::InvalidTemplate { template, reason } => {
                write!(f, "invalid path template {template:?}: {reason}")
            }
            Self::OutOfRange { what, value } => write!(f, "{what} out of range: {value}"),
            Self::Invalid { what, reason } => write!(f, "invalid {what}: {reason}"),
        }
    }
}

impl Error for ConfigError {}
