//! Model-id globs: `*` matches any run of characters (including none), everything else is
//! literal and compared case-insensitively.
//!
//! Matching is linear: the pattern is split at `*` into literal pieces; the first piece must be a
//! prefix, the last a suffix, and the pieces in between are found left to right with a substring
//! search (greedy leftmost placement is optimal when the only wildcard is `*`). Nothing ever
//! backtracks, so patterns like `a*a*a*a*b` cost no more than a few scans of the text.

/// Does `text` match `pattern`? See the module documentation.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern = pattern.to_lowercase();
    let text = text.to_lowercase();
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or("");
    if !pattern.contains('*') {
        return first == text;
    }
    let Some(rest) = text.strip_prefix(first) else {
        return false;
    };
    // `pieces` now holds the middle pieces followed by the last piece.
    let mut middle: Vec<&str> = pieces.collect();
    let last = middle.pop().unwrap_or("");
    let Some(mut rest) = rest.strip_suffix(last) else {
        return false;
    };
    for piece in middle.into_iter().filter(|p| !p.is_empty()) {
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
