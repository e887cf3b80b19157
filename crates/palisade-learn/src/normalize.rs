//! Path normalisation: which path segments look variable.
//!
//! A segment becomes a placeholder when it is, after the stateless rules
//! below, or when the learning state has seen too many siblings of it under
//! the same parent (see [`LearnLayerBuilder::max_siblings`]):
//!
//! - a number: ASCII digits only (`123`);
//! - a UUID: `8-4-4-4-12` hexadecimal digits, in either case;
//! - long hexadecimal: 16 or more hexadecimal digits (`5f2b...`);
//! - a date: starts with `YYYY-MM-DD` (`2024-05-01`, `2024-05-01T10:00:00Z`);
//! - an email address: contains `@` (or `%40`) followed later by a `.`;
//! - a base64url-like token: 16 or more characters of the base64url
//!   alphabet (`A-Z a-z 0-9 - _ =`) with at least one digit and one letter,
//!   that changes character class (digit, lower, upper, other) at least
//!   once every four characters: `aZ3kP9_xQ2mN8vR1` is a token,
//!   `oauth2-callback-handler` is a name;
//! - anything longer than 64 bytes.
//!
//! Empty segments are skipped, so `/a//b/` is `/a/b`.
//!
//! [`LearnLayerBuilder::max_siblings`]: crate::LearnLayerBuilder::max_siblings

/// The most segments a learned path may have; deeper paths are not learned.
pub(crate) const MAX_DEPTH: usize = 16;

/// The segments of a path, without empty ones.
pub(crate) fn segments(path: &str) -> Segments<'_> {
    Segments { path, at: 0 }
}

/// Iterator over the non-empty segments of a path; a plain byte loop,
/// cheaper than `split` on the short strings paths are made of.
pub(crate) struct Segments<'a> {
    path: &'a str,
    at: usize,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let rest = self.path.get(self.at..)?;
            if rest.is_empty() {
                return None;
            }
            let len = rest.bytes().position(|b| b == b'/').unwrap_or(rest.len());
            self.at += len + 1;
            if len > 0 {
                // `/` is ASCII, so `len` is a character boundary.
                return rest.get(..len);
            }
        }
    }
}

/// Whether a segment looks variable by itself.
///
/// Ordered for the common cases: a number fails or passes on its first
/// bytes, a short name needs one scan for `@` and `%`, and only segments of
/// 16 bytes or more pay for the full classification.
pub(crate) fn is_variable(segment: &str) -> bool {
    let b = segment.as_bytes();
    let len = b.len();
    if len == 0 {
        return false;
    }
    if len > 64 || b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if is_date(b) || is_email(b) {
        return true;
    }
    len >= 16 && (is_long_hex(b) || is_uuid(b) || is_token(b))
}

fn is_long_hex(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_hexdigit)
}

fn is_email(b: &[u8]) -> bool {
    if !b.iter().any(|&c| c == b'@' || c == b'%') {
        return false;
    }
    let mut at = false;
    for (i, &c) in b.iter().enumerate() {
        if c == b'@' || (c == b'%' && b.get(i + 1..i + 3) == Some(b"40")) {
            at |= i > 0;
        } else if c == b'.' && at {
            return true;
        }
    }
    false
}

/// Base64url alphabet, a digit and a letter, and a change of character
/// class at least every four characters.
fn is_token(b: &[u8]) -> bool {
    let (mut digits, mut letters, mut changes) = (0, 0, 0);
    let mut previous = None;
    for &c in b {
        let class = match c {
            b'0'..=b'9' => 0,
            b'a'..=b'z' => 1,
            b'A'..=b'Z' => 2,
            b'-' | b'_' | b'=' => 3,
            _ => return false,
        };
        digits += usize::from(class == 0);
        letters += usize::from(class == 1 || class == 2);
        if previous.is_some_and(|p| p != class) {
            changes += 1;
        }
        previous = Some(class);
    }
    digits > 0 && letters > 0 && changes * 4 >= b.len()
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_date(b: &[u8]) -> bool {
    b.len() >= 10
        && b[4] == b'-'
        && b[..10].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// A segment of a learned template.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Segment {
    /// A fixed name.
    Literal(Box<str>),
    /// A placeholder.
    Variable,
}

/// `/users/{var1}/orders/{var2}`: placeholders numbered left to right.
pub(crate) fn template(segments: &[Segment]) -> String {
    if segments.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::new();
    let mut n = 0;
    for segment in segments {
        out.push('/');
        match segment {
            Segment::Literal(name) => out.push_str(name),
            Segment::Variable => {
                n += 1;
                out.push_str("{var");
                out.push_str(&n.to_string());
                out.push('}');
            }
        }
    }
    out
}

/// The segments of a template, placeholders (`{name}` or `{*name}`) as
/// variables.
pub(crate) fn parse_template(template: &str) -> Vec<Segment> {
    segments(template)
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                Segment::Variable
            } else {
                Segment::Literal(s.into())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_segments_are_recognised() {
        for s in [
            "123",
            "0",
            "550e8400-e29b-41d4-a716-446655440000",
            "550E8400-E29B-41D4-A716-446655440000",
            "5f2b9c0d1e2f3a4b",
            "2024-05-01",
            "2024-05-01T10:00:00Z",
            "alice@example.com",
            "alice%40example.com",
            "aZ3kP9_xQ2mN8vR1",
            "eyJhbGciOiJIUzI1NiJ9",
            &"x".repeat(65),
        ] {
            assert!(is_variable(s), "{s} should be variable");
        }
    }

    #[test]
    fn names_stay_literal() {
        for s in [
            "users",
            "v1",
            "me",
            "oauth2-callback-handler",
            "getUserPreferences",
            "orders.json",
            "@me",
            "user-preferences-settings",
            "abcdef",
        ] {
            assert!(!is_variable(s), "{s} should be literal");
        }
        // A bare year is a number: numbers are always variable.
        assert!(is_variable("2024"));
    }

    #[test]
    fn templates_number_placeholders_left_to_right() {
        let segments: Vec<Segment> = segments("/users/123//orders/9/")
            .map(|s| {
                if is_variable(s) {
                    Segment::Variable
                } else {
                    Segment::Literal(s.into())
                }
            })
            .collect();
        assert_eq!(template(&segments), "/users/{var1}/orders/{var2}");
        assert_eq!(template(&[]), "/");
        assert_eq!(parse_template("/users/{var1}/orders/{var2}"), segments);
        assert_eq!(parse_template("/files/{*rest}")[1], Segment::Variable);
    }
}
