//! Reading cookies from `Cookie` header fields, without allocating.
//!
//! The session layer needs one named value per request, as bytes. This scan
//! borrows it from the header without allocating and without requiring
//! UTF-8, which a full parse into `cookie::Cookie` values would need; the
//! tests check it against the `cookie` crate on well-formed input.
//!
//! What it accepts, following what browsers and servers send:
//! - several `Cookie` fields (HTTP/2 sends one per cookie), read in order;
//! - pairs separated by `;` with optional spaces or tabs around names,
//!   values and separators;
//! - a value in double quotes, returned without them;
//! - duplicate names: **the first wins**, across all fields. Browsers send
//!   the cookie with the most specific path first, and a later duplicate is
//!   more likely injected by a sibling subdomain;
//! - malformed pairs (no `=`, empty name) are skipped, and any byte,
//!   including non-UTF-8, is carried through or skipped, never a panic.

use http::HeaderValue;
use http::header::GetAll;

/// The value of the first cookie named `name` in the given `Cookie` fields.
pub fn find_cookie<'a>(fields: GetAll<'a, HeaderValue>, name: &str) -> Option<&'a [u8]> {
    fields
        .into_iter()
        .find_map(|field| find_in_field(field.as_bytes(), name.as_bytes()))
}

/// The value of the first cookie named `name` in one `Cookie` field.
pub fn find_in_field<'a>(field: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    pairs(field)
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value)
}

/// Every well-formed `name=value` pair of one `Cookie` field, in order,
/// names and values trimmed and values unquoted.
pub fn pairs(field: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    field.split(|&b| b == b';').filter_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        let name = trim(&pair[..eq]);
        (!name.is_empty()).then(|| (name, unquote(trim(&pair[eq + 1..]))))
    })
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use http::header::COOKIE;

    fn find<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
        find_cookie(headers.get_all(COOKIE), name)
    }

    fn headers(fields: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for field in fields {
            headers.append(COOKIE, HeaderValue::from_bytes(field).unwrap());
        }
        headers
    }

    #[test]
    fn one_field_several_pairs() {
        let h = headers(&[b"a=1; sid=abc; b=2"]);
        assert_eq!(find(&h, "sid"), Some(&b"abc"[..]));
        assert_eq!(find(&h, "a"), Some(&b"1"[..]));
        assert_eq!(find(&h, "b"), Some(&b"2"[..]));
        assert_eq!(find(&h, "c"), None);
    }

    #[test]
    fn several_fields_as_http2_sends_them() {
        let h = headers(&[b"a=1", b"sid=abc", b"b=2"]);
        assert_eq!(find(&h, "sid"), Some(&b"abc"[..]));
        assert_eq!(find(&h, "b"), Some(&b"2"[..]));
    }

    #[test]
    fn optional_whitespace_is_ignored() {
        let h = headers(&[b"  a = 1 ;\tsid\t=\tabc\t;b=2  "]);
        assert_eq!(find(&h, "a"), Some(&b"1"[..]));
        assert_eq!(find(&h, "sid"), Some(&b"abc"[..]));
        assert_eq!(find(&h, "b"), Some(&b"2"[..]));
    }

    #[test]
    fn quoted_values_lose_their_quotes() {
        let h = headers(&[b"sid=\"abc def\"; q=\"; e=\"\""]);
        assert_eq!(find(&h, "sid"), Some(&b"abc def"[..]));
        assert_eq!(find(&h, "q"), Some(&b"\""[..]));
        assert_eq!(find(&h, "e"), Some(&b""[..]));
    }

    #[test]
    fn first_duplicate_wins_across_fields() {
        let h = headers(&[b"sid=first; sid=second", b"sid=third"]);
        assert_eq!(find(&h, "sid"), Some(&b"first"[..]));
        let h = headers(&[b"other=1", b"sid=second", b"sid=third"]);
        assert_eq!(find(&h, "sid"), Some(&b"second"[..]));
    }

    #[test]
    fn malformed_pairs_are_skipped() {
        let h = headers(&[b"garbage; =nameless; ;; sid=abc; tail"]);
        assert_eq!(find(&h, "sid"), Some(&b"abc"[..]));
        assert_eq!(find(&h, "garbage"), None);
        assert_eq!(find(&h, ""), None);
    }

    #[test]
    fn value_may_contain_equals() {
        let h = headers(&[b"sid=a=b=="]);
        assert_eq!(find(&h, "sid"), Some(&b"a=b=="[..]));
    }

    #[test]
    fn names_are_case_sensitive() {
        let h = headers(&[b"SID=upper; sid=lower"]);
        assert_eq!(find(&h, "sid"), Some(&b"lower"[..]));
    }

    #[test]
    fn non_utf8_bytes_do_not_panic() {
        let h = headers(&[b"x=\xff\xfe; sid=\xc3\x28; \xff=1"]);
        assert_eq!(find(&h, "sid"), Some(&b"\xc3\x28"[..]));
        assert_eq!(find(&h, "x"), Some(&b"\xff\xfe"[..]));
        assert_eq!(find_in_field(b"\xff\xff\xff", b"sid"), None);
    }

    #[test]
    fn agrees_with_the_cookie_crate_on_well_formed_input() {
        let fields = [
            "a=1; b=2; c=3",
            "session=abc123; theme=dark",
            "x=\"quoted\"; y=plain",
            "k=v=w; z=",
            "  spaced = out ;  n=1",
        ];
        for field in fields {
            for parsed in cookie::Cookie::split_parse(field) {
                let parsed = parsed.unwrap();
                // The first cookie of each name is the one both must find.
                let first = cookie::Cookie::split_parse(field)
                    .flatten()
                    .find(|c| c.name() == parsed.name())
                    .unwrap();
                assert_eq!(
                    find_in_field(field.as_bytes(), parsed.name().as_bytes()),
                    Some(first.value_trimmed().as_bytes()),
                    "{field:?} {}",
                    parsed.name()
                );
            }
        }
    }
}
