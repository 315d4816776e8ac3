//! URLs as the worker shows them: a password in `user:pass@host` or a token
//! in a query string is configuration, not something to print.

/// `url` with its userinfo (`user:pass@`), if any, shown as `***`.
pub fn masked(url: &str) -> String {
    match userinfo(url) {
        Some(info) => url.replacen(info, "***", 1),
        None => url.to_string(),
    }
}

/// `url` as an error names it: userinfo as `***`, and no query string or
/// fragment (they often carry tokens).
pub fn for_errors(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    masked(&url[..end])
}

/// `text` (an error message that may quote `url`) with the userinfo of
/// `url` shown as `***`.
pub fn redact(text: &str, url: &str) -> String {
    match userinfo(url) {
        Some(info) => text.replace(info, "***"),
        None => text.to_string(),
    }
}

/// The `user:pass` part of `scheme://user:pass@host/...`, if any.
fn userinfo(url: &str) -> Option<&str> {
    let rest_at = url.find("://")? + 3;
    let rest = &url[rest_at..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    Some(&rest[..at]).filter(|info| !info.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_masked_and_nothing_else_changes() {
        assert_eq!(
            masked("https://bob:hunter2@api.example.com/v1"),
            "https://***@api.example.com/v1"
        );
        assert_eq!(
            masked("http://token@127.0.0.1:8000"),
            "http://***@127.0.0.1:8000"
        );
        assert_eq!(
            masked("https://api.example.com/v1/a@b"),
            "https://api.example.com/v1/a@b"
        );
        assert_eq!(masked("https://a:b:c@h@x/y"), "https://***@x/y");
        assert_eq!(masked("not a url"), "not a url");
    }

    #[test]
    fn errors_drop_the_query_and_the_fragment() {
        assert_eq!(
            for_errors("https://u:p@hook.example/run?token=abc#x"),
            "https://***@hook.example/run"
        );
        assert_eq!(for_errors("http://h/p"), "http://h/p");
    }

    #[test]
    fn error_texts_lose_the_userinfo() {
        let url = "http://bob:hunter2@10.0.0.1/v1";
        assert_eq!(
            redact("connect to bob:hunter2@10.0.0.1 failed", url),
            "connect to ***@10.0.0.1 failed"
        );
        assert_eq!(redact("refused", "http://h"), "refused");
    }
}
