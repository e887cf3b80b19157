//! Plain JSON paths, for reading claims.

use std::fmt;

use serde_json::Value;

use crate::error::ConfigError;

/// A plain JSON path into a JSON value, as `$.user.id`.
///
/// `$` followed by `.name`, `['name']` (or `["name"]`) and `[index]` steps:
/// `$.sub`, `$.user.id`, `$['user-id']`, `$.roles[0]`. Filters, wildcards,
/// slices, unions and recursive descent are refused when parsed, with an
/// error that names the path and says why. Session identifiers and rate
/// limit keys read JWT claims with it.
///
/// ```
/// use palisade_core::JsonPath;
///
/// let path = JsonPath::parse("$.user['plan-id'].tags[1]")?;
/// let claims = serde_json::json!({"user": {"plan-id": {"tags": ["a", "b"]}}});
/// assert_eq!(path.lookup(&claims), Some(&serde_json::json!("b")));
/// assert!(JsonPath::parse("$..id").is_err());
/// # Ok::<(), palisade_core::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

impl JsonPath {
    /// Parses a plain path; the error names the path and what is wrong.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let bad = |reason: &str| ConfigError::InvalidJsonPath {
            path: text.to_owned(),
            reason: reason.to_owned(),
        };
        let mut rest = text
            .strip_prefix('$')
            .ok_or_else(|| bad("must start with `$`"))?;
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                if after.starts_with('.') {
                    return Err(bad("recursive descent (`..`) is not a plain path"));
                }
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let name = &after[..end];
                if name.is_empty() {
                    return Err(bad("empty name after `.`"));
                }
                if name == "*" {
                    return Err(bad("wildcards are not a plain path"));
                }
                if name
                    .chars()
                    .any(|c| c.is_whitespace() || "*?()@,:'\"]".contains(c))
                {
                    return Err(bad("name after `.` holds a character that needs brackets"));
                }
                steps.push(Step::Key(name.to_owned()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(|| bad("unclosed `[`"))?;
                let inner = &after[..end];
                steps.push(Self::bracket(inner).map_err(bad)?);
                rest = &after[end + 1..];
            } else {
                return Err(bad("expected `.` or `[`"));
            }
        }
        if steps.is_empty() {
            return Err(bad("names no claim"));
        }
        Ok(Self {
            text: text.to_owned(),
            steps,
        })
    }

    fn bracket(inner: &str) -> Result<Step, &'static str> {
        for quote in ['\'', '"'] {
            if let Some(quoted) = inner.strip_prefix(quote) {
                let name = quoted
                    .strip_suffix(quote)
                    .ok_or("unclosed quote in `[...]`")?;
                if name.is_empty() || name.contains([quote, '\\']) {
                    return Err("a bracketed name must be non-empty and plain");
                }
                return Ok(Step::Key(name.to_owned()));
            }
        }
        if inner.starts_with('?') {
            return Err("filters are not a plain path");
        }
        if inner == "*" {
            return Err("wildcards are not a plain path");
        }
        if inner.contains(':') {
            return Err("slices are not a plain path");
        }
        if inner.contains(',') {
            return Err("unions are not a plain path");
        }
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_digit()) {
            return Err("an index must be a non-negative integer");
        }
        inner
            .parse()
            .map(Step::Index)
            .map_err(|_| "index too large")
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at the path, if there is one.
    pub fn lookup<'v>(&self, mut value: &'v Value) -> Option<&'v Value> {
        for step in &self.steps {
            value = match step {
                Step::Key(key) => value.as_object()?.get(key)?,
                Step::Index(i) => value.as_array()?.get(*i)?,
            };
        }
        Some(value)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonPath({})", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_json_paths_parse() {
        let steps = |p: &str| JsonPath::parse(p).unwrap().steps;
        assert_eq!(steps("$.sub"), vec![Step::Key("sub".into())]);
        assert_eq!(
            steps("$.user.id"),
            vec![Step::Key("user".into()), Step::Key("id".into())]
        );
        assert_eq!(steps("$['user-id']"), vec![Step::Key("user-id".into())]);
        assert_eq!(steps("$[\"a b\"]"), vec![Step::Key("a b".into())]);
        assert_eq!(
            steps("$.roles[0]"),
            vec![Step::Key("roles".into()), Step::Index(0)]
        );
    }

    #[test]
    fn json_paths_that_are_not_plain_are_refused() {
        let cases = [
            ("sub", "must start with `$`"),
            ("$", "names no claim"),
            ("$..id", "recursive descent"),
            ("$.*", "wildcards"),
            ("$[*]", "wildcards"),
            ("$.roles[?(@.x)]", "filters"),
            ("$.roles[0:2]", "slices"),
            ("$.roles[0,1]", "unions"),
            ("$.roles[-1]", "non-negative integer"),
            ("$.roles[0", "unclosed `[`"),
            ("$['a]", "unclosed quote"),
            ("$.", "empty name"),
            ("$x", "expected `.` or `[`"),
            ("$.a b", "needs brackets"),
        ];
        for (path, reason) in cases {
            let err = JsonPath::parse(path).unwrap_err();
            match &err {
                ConfigError::InvalidJsonPath { path: p, reason: r } => {
                    assert_eq!(p, path);
                    assert!(r.contains(reason), "{path}: {r}");
                }
                other => panic!("{path}: {other:?}"),
            }
        }
    }
}
