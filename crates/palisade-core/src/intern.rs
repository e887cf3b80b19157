//! Interning of configuration strings.
//!
//! Names of identifiers and endpoint templates travel with every request in
//! the extensions. Sharing them through an `Arc` would make every request on
//! every thread write the same reference count; interning them once, at
//! configuration time, makes them `&'static str` that cost nothing to copy.
//! The table only grows with distinct configured names, never with traffic.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

static TABLE: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();

/// Returns a `'static` copy of `s`, the same one for equal strings.
pub(crate) fn intern(s: &str) -> &'static str {
    let table = TABLE.get_or_init(Default::default);
    let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = table.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    table.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::intern;

    #[test]
    fn equal_strings_share_one_copy() {
        let a = intern(&String::from("cookie-name"));
        let b = intern("cookie-name");
        assert!(std::ptr::eq(a, b));
    }
}
