//! Typed settings for `rolecall serve`. Every field has a default and a `ROLECALL_*`
//! environment variable (wired in `cli.rs`); the database URL's password is redacted in Debug.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    pub database_url: String,
    /// Public base URL (scheme://host[:port]) used in `meta.location`; default: the request's host.
    pub public_url: Option<String>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Most operations in one `/Bulk` request (ServiceProviderConfig `bulk.maxOperations`).
    pub bulk_max_operations: usize,
    /// Largest `/Bulk` request body, in bytes (ServiceProviderConfig `bulk.maxPayloadSize`).
    pub bulk_max_payload_bytes: usize,
    /// Largest page a list request returns (larger `count`s are capped).
    pub max_page_size: i64,
    /// Page size when a list request gives no `count`.
    pub default_page_size: i64,
    /// Database connections (PostgreSQL pool size; SQLite readers, at most 4, plus one writer).
    pub db_max_connections: u32,
    /// HTTP worker threads (0 = one per core).
    pub workers: usize,
    /// How often the change feed is polled for changes made by other servers or the CLI.
    pub feed_poll_ms: u64,
    /// Lifetime of signed role tokens.
    pub role_token_ttl_secs: u64,
    /// How long a stop waits for in-flight requests before cutting them.
    pub shutdown_timeout_secs: u64,
    /// How long after a request starts its body must have arrived (0 = no limit).
    pub body_timeout_secs: u64,
    /// `aud` of signed role tokens.
    pub role_token_audience: String,
    /// How many user documents single-user SCIM reads keep in memory (0 = none).
    pub scim_cache_users: usize,
    /// And how many bytes they may take, about (a user in thousands of groups has a large
    /// document).
    pub scim_cache_bytes: usize,
    /// PostgreSQL: this is the only server on the database (see `store::pg_lock`).
    pub sole_server: bool,
    /// Ask for transparent huge pages for the loaded directory (see `huge_pages`). Off in
    /// this default (tests build many servers in one process); on by default on the CLI.
    pub huge_pages: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://rolecall.db".into(),
            public_url: None,
            max_body_bytes: 1024 * 1024,
            bulk_max_operations: 1000,
            bulk_max_payload_bytes: 1024 * 1024,
            max_page_size: 1000,
            default_page_size: 100,
            db_max_connections: 8,
            workers: 0,
            feed_poll_ms: 200,
            role_token_ttl_secs: 300,
            shutdown_timeout_secs: 30,
            body_timeout_secs: 30,
            role_token_audience: "rolecall".into(),
            scim_cache_users: 16 * 1024,
            scim_cache_bytes: 128 * 1024 * 1024,
            sole_server: false,
            huge_pages: false,
        }
    }
}

/// A database URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // not a well-formed URL (`postgres:/user:pw@host`): mask whatever could be credentials
        return match (url.split_once(':'), url.rfind('@')) {
            (Some((scheme, _)), Some(at)) if at > scheme.len() => {
                format!("{scheme}:***{}", &url[at..])
            }
            _ => url.to_string(),
        };
    };
    // the authority ends at the first `/`, `?` or `#`; its user info at the *last* `@` in it
    // (a password may contain `@`)
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    // and passwords given as query parameters
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.to_ascii_lowercase().contains("password") => {
                        format!("{k}=***")
                    }
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn passwords_never_survive() {
        for (url, want) in [
            (
                "postgres://postgres:S3cr@tPw@127.0.0.1:5432/db",
                "postgres://postgres:***@127.0.0.1:5432/db",
            ),
            (
                "postgres://u:p@h/db?sslmode=require&password=Top&sslpassword=x",
                "postgres://u:***@h/db?sslmode=require&password=***&sslpassword=***",
            ),
            (
                "postgres://u@h/db?password=TopSecret",
                "postgres://u@h/db?password=***",
            ),
            ("postgres://h/db", "postgres://h/db"),
            ("sqlite://rolecall.db", "sqlite://rolecall.db"),
            ("sqlite://a@b.db?mode=rwc", "sqlite://a@b.db?mode=rwc"),
            (
                "postgres:/postgres:Pw-Zq81xK@127.0.0.1:5432/x",
                "postgres:***@127.0.0.1:5432/x",
            ),
            ("postgresql:Pw@h/db", "postgresql:***@h/db"),
            ("sqlite:rolecall.db", "sqlite:rolecall.db"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("public_url", &self.public_url)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("bulk_max_operations", &self.bulk_max_operations)
            .field("bulk_max_payload_bytes", &self.bulk_max_payload_bytes)
            .field("max_page_size", &self.max_page_size)
            .field("default_page_size", &self.default_page_size)
            .field("db_max_connections", &self.db_max_connections)
            .field("workers", &self.workers)
            .field("feed_poll_ms", &self.feed_poll_ms)
            .field("role_token_ttl_secs", &self.role_token_ttl_secs)
            .field("role_token_audience", &self.role_token_audience)
            .field("scim_cache_users", &self.scim_cache_users)
            .field("scim_cache_bytes", &self.scim_cache_bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let s = Settings {
            database_url: "postgres://app:s3cret@db:5432/rolecall".into(),
            ..Settings::default()
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret"));
        assert!(shown.contains("postgres://app:***@db:5432/rolecall"));
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
