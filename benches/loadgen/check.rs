//! Cheap looks into response bodies, for the workloads' checks (they run on
//! every response, on the generator's share of the cores).

/// The start of a body, for messages.
pub fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
    if body.len() > 400 {
        format!("{s}...")
    } else {
        s
    }
}

/// Substring search: candidates are found by scanning for the needle's first
/// byte (`windows().any()` calls memcmp at every offset, which made the checks
/// a visible share of the load generator's CPU, taken from the server when
/// they share cores).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(p) = haystack[from..].iter().position(|&b| b == first) {
        let at = from + p;
        if haystack[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The unsigned integer value of the first `"name": N` in a JSON body.
pub fn json_uint_field(body: &[u8], name: &str) -> Option<u64> {
    let key = format!("\"{name}\"");
    let at = find(body, key.as_bytes())?;
    let rest = &body[at + key.len()..];
    let rest = rest
        .trim_ascii_start()
        .strip_prefix(b":")?
        .trim_ascii_start();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// A cheap, well-mixed pseudo-random number from `x` (picks users for requests).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
