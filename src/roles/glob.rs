//! Model-id globs: `*` matches any run of characters (including none), everything else is
//! literal and compared case-insensitively.
//!
//! Matching is linear: the pattern is split at `*` into literal pieces; the first piece must be a
//! prefix, the last a suffix, and the pieces in between are found left to right with a substring
//! search (greedy leftmost placement is optimal when the only wildcard is `*`). Nothing ever
//! backtracks, so patterns like `a*a*a*a*b` cost no more than a few scans of the text.

/// Does `text` match `pattern`? See the module documentation.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    // the common case (ASCII model ids and globs, which are ASCII by `glob_problem`) folds
    // into stack buffers: no allocation per evaluation
    const SHORT: usize = 256;
    if pattern.len() <= SHORT && text.len() <= SHORT && pattern.is_ascii() && text.is_ascii() {
        let (mut p, mut t) = ([0u8; SHORT], [0u8; SHORT]);
        let folded = |buf: &'_ mut [u8; SHORT], s: &str| -> Option<usize> {
            let out = buf.get_mut(..s.len())?;
            out.copy_from_slice(s.as_bytes());
            out.make_ascii_lowercase();
            Some(s.len())
        };
        if let (Some(pn), Some(tn)) = (folded(&mut p, pattern), folded(&mut t, text)) {
            if let (Ok(p), Ok(t)) = (std::str::from_utf8(&p[..pn]), std::str::from_utf8(&t[..tn])) {
                return match_folded(p, t);
            }
        }
    }
    match_folded(&pattern.to_lowercase(), &text.to_lowercase())
}

/// [`glob_match`] of a pattern and a text both already folded.
fn match_folded(pattern: &str, text: &str) -> bool {
    let Some((first, after_first)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(rest) = text.strip_prefix(first) else {
        return false;
    };
    // `after_first` holds the middle pieces and the last piece
    let (middle, last) = after_first.rsplit_once('*').unwrap_or(("", after_first));
    let Some(mut rest) = rest.strip_suffix(last) else {
        return false;
    };
    for piece in middle.split('*').filter(|p| !p.is_empty()) {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Why `pattern` is not an acceptable model glob, or `None` when it is: it must be non-empty and
/// use only `A-Z a-z 0-9 . _ : / -` and `*`.
pub fn glob_problem(pattern: &str) -> Option<String> {
    if pattern.is_empty() {
        return Some("model glob must not be empty".to_string());
    }
    let bad: Vec<char> = pattern
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-' | '*')))
        .collect();
    if bad.is_empty() {
        None
    } else {
        let shown: String = bad
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        Some(format!(
            "bad model glob {pattern:?}: character(s) {shown} not allowed (use A-Z a-z 0-9 . _ : / - and *)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything at all", true),
            ("**", "", true),
            ("claude-sonnet-*", "claude-sonnet-4-20250514", true),
            ("claude-sonnet-*", "claude-sonnet-", true),
            ("claude-sonnet-*", "claude-sonnet", false),
            ("claude-sonnet-*", "claude-opus-4-20250514", false),
            ("claude-sonnet-*", "xclaude-sonnet-4", false),
            ("claude-*-4-*", "claude-opus-4-20250514", true),
            ("claude-*-4-*", "claude-opus-3-20240229", false),
            ("*-20250514", "claude-haiku-4-20250514", true),
            ("*-20250514", "claude-haiku-4-20250515", false),
            ("CLAUDE-Opus-*", "claude-opus-4", true),
            ("claude-opus-*", "Claude-Opus-4", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("a*b*c", "aXbYbZc", true),
            ("*ab*ab*", "abab", true),
            ("*ab*ab*", "aba", false),
            ("a.b", "aXb", false),
            ("a?b", "aXb", false),
            ("a?b", "a?b", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(glob_match(pattern, text), *want, "{pattern:?} vs {text:?}");
        }
    }

    /// Backtracking `*` matching, the definition `glob_match` must agree with.
    fn naive(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| naive(rest, &t[i..])),
            Some((c, rest)) => t.first() == Some(c) && naive(rest, &t[1..]),
        }
    }

    /// Random short globs against a backtracking matcher, texts around the stack buffer's size
    /// (both paths), and a non-ASCII text that folds to ASCII (the general path).
    #[test]
    fn short_and_long_paths_agree() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"aAbB-*";
        for _ in 0..20_000 {
            let plen = (next() % 8) as usize;
            let tlen = (next() % 10) as usize;
            let pattern: String = (0..plen)
                .map(|_| char::from(alphabet[(next() % 6) as usize]))
                .collect();
            let text: String = (0..tlen)
                .map(|_| char::from(alphabet[(next() % 5) as usize]))
                .collect();
            assert_eq!(
                glob_match(&pattern, &text),
                naive(
                    pattern.to_lowercase().as_bytes(),
                    text.to_lowercase().as_bytes()
                ),
                "{pattern:?} vs {text:?}"
            );
        }
        for n in [255, 256, 257, 300] {
            let text = format!("claude-{}", "x".repeat(n));
            assert!(glob_match("claude-*", &text), "{n}");
            assert!(glob_match("CLAUDE-*X", &text), "{n}");
            assert!(!glob_match("claude-*y", &text), "{n}");
            assert!(glob_match(&text.to_uppercase(), &text), "{n}");
        }
        // the Kelvin sign folds to an ASCII k: the general path, as before
        assert!(glob_match("claude-k*", "claude-\u{212A}x"));
    }

    #[test]
    fn glob_is_linear_on_pathological_patterns() {
        let text = "a".repeat(100_000);
        let pattern = format!("{}b", "a*".repeat(2_000));
        let start = std::time::Instant::now();
        assert!(!glob_match(&pattern, &text));
        assert!(glob_match(&format!("{}a", "a*".repeat(2_000)), &text));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn glob_problems() {
        assert!(glob_problem("claude-sonnet-*").is_none());
        assert!(glob_problem("*").is_none());
        assert!(glob_problem("org/model:v1.2_x").is_none());
        assert!(glob_problem("").is_some());
        assert!(glob_problem("claude sonnet").is_some());
        assert!(glob_problem("claude-[ab]").is_some());
        assert!(glob_problem("claude-?").is_some());
    }
}
