//! Unpadded base64url (RFC 4648 §5), as JWTs use it.

/// Decodes unpadded base64url; `None` on any other byte, on padding, or on
/// a length no encoding produces.
pub(crate) fn decode(input: &[u8]) -> Option<Vec<u8>> {
    if input.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &byte in input {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Leftover bits must be zero, so that each byte string has one encoding.
    if acc & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

/// Encodes as unpadded base64url.
#[cfg(test)]
pub(crate) fn encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_base64url() {
        for input in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\xfe\x00"] {
            assert_eq!(decode(encode(input).as_bytes()).unwrap(), input);
        }
        assert_eq!(encode(b"\xfb\xff"), "-_8");
        assert!(decode(b"Zm9v=").is_none());
        assert!(decode(b"Zm+v").is_none());
        assert!(decode(b"Z").is_none());
        // "Zh" carries a non-zero leftover bit: not the encoding of "f".
        assert!(decode(b"Zh").is_none());
    }
}
